using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PgProxy.Core.Transport;

/// <summary>
/// The few Linux calls the event loops make: epoll, and send/recv on sockets the loops own. Socket handles are
/// passed as <see cref="SafeSocketHandle"/>, so a socket closed by another thread is never reused under a call.
/// </summary>
internal static unsafe partial class LinuxSockets
{
    public const uint EpollIn = 0x001;
    public const uint EpollOut = 0x004;
    public const uint EpollErr = 0x008;
    public const uint EpollHup = 0x010;
    public const uint EpollRdHup = 0x2000;
    public const uint EpollEdgeTriggered = 1u << 31;

    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const int EpollCloExec = 0x80000;

    public const int MsgPeek = 0x2;
    public const int MsgNoSignal = 0x4000;

    public const short PollIn = 0x001;
    public const short PollOut = 0x004;

    public const int EIntr = 4;
    public const int EAgain = 11;

    /// <summary>
    /// struct epoll_event is packed on x86-64 (12 bytes: events, then data at offset 4) and naturally aligned elsewhere
    /// (16 bytes, data at offset 8).
    /// </summary>
    public static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    public static readonly int EpollDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    /// <summary>Where the loops can run: Linux on the two architectures whose epoll_event layout is known.</summary>
    public static bool IsSupported =>
        OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epollFd, int operation, SafeSocketHandle socket, byte* epollEvent);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epollFd, byte* events, int maxEvents, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Receive(SafeSocketHandle socket, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(SafeSocketHandle socket, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollDescriptor* descriptors, nuint count, int timeoutMilliseconds);

    /// <summary>struct pollfd.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollDescriptor
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }

    /// <summary>The exception a failed socket call becomes: what <see cref="NetworkStream"/> throws, an IOException over a SocketException.</summary>
    public static IOException Failure(int errno, string operation)
    {
        var inner = new SocketException((int)ToSocketError(errno));
        return new IOException($"Unable to {operation} the transport connection: {Marshal.GetPInvokeErrorMessage(errno)}.", inner);
    }

    /// <summary>The portable name of the errno values a TCP socket reports.</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        11 => SocketError.WouldBlock,
        32 => SocketError.Shutdown, // EPIPE
        101 => SocketError.NetworkUnreachable,
        103 => SocketError.ConnectionAborted,
        104 => SocketError.ConnectionReset,
        107 => SocketError.NotConnected,
        110 => SocketError.TimedOut,
        111 => SocketError.ConnectionRefused,
        113 => SocketError.HostUnreachable,
        9 => SocketError.OperationAborted, // EBADF: closed under us
        _ => SocketError.SocketError,
    };
}
