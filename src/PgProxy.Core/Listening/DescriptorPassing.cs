using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PgProxy.Core.Listening;

/// <summary>
/// Passing open descriptors between processes over a Unix domain socket (SCM_RIGHTS, unix(7)), and reading the peer's
/// credentials (SO_PEERCRED): what a hand-over of the listening sockets (<c>pgproxy --takeover</c>) needs and .NET does
/// not offer. Linux on 64-bit architectures only, where the layouts below are those of glibc and musl.
/// </summary>
public static unsafe partial class DescriptorPassing
{
    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const int SoPeerCred = 17;
    private const int MsgCmsgCloexec = 0x40000000;
    private const int FGetFd = 1;
    private const int FSetFd = 2;
    private const int FdCloexec = 1;

    /// <summary>sizeof(struct cmsghdr) on 64-bit Linux: cmsg_len (size_t), cmsg_level, cmsg_type.</summary>
    private const int CmsgHeaderSize = 16;

    /// <summary>At most this many descriptors in one message (the kernel's SCM_MAX_FD is 253).</summary>
    public const int MaxDescriptors = 250;

    /// <summary>Where descriptors can be passed this way.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && Environment.Is64BitProcess;

    /// <summary>
    /// Sends <paramref name="payload"/> (at least one byte) with <paramref name="descriptors"/> attached, in one
    /// <c>sendmsg</c>; the receiver gets its own descriptors for the same open sockets. Blocking.
    /// </summary>
    public static void Send(Socket socket, ReadOnlySpan<byte> payload, IReadOnlyList<SafeHandle> descriptors)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(descriptors);
        if (payload.IsEmpty || descriptors.Count > MaxDescriptors)
        {
            throw new ArgumentException($"a payload of at least one byte and at most {MaxDescriptors} descriptors", nameof(descriptors));
        }

        int dataLength = descriptors.Count * sizeof(int);
        int controlLength = CmsgHeaderSize + Align(dataLength);
        byte* control = stackalloc byte[controlLength];
        new Span<byte>(control, controlLength).Clear();
        *(nint*)control = CmsgHeaderSize + dataLength;
        *(int*)(control + 8) = SolSocket;
        *(int*)(control + 12) = ScmRights;
        var added = new List<SafeHandle>(descriptors.Count);
        try
        {
            for (int i = 0; i < descriptors.Count; i++)
            {
                bool ok = false;
                descriptors[i].DangerousAddRef(ref ok);
                added.Add(descriptors[i]);
                ((int*)(control + CmsgHeaderSize))[i] = (int)descriptors[i].DangerousGetHandle();
            }

            fixed (byte* data = payload)
            {
                var vector = new IoVector { Base = data, Length = payload.Length };
                var message = new MessageHeader { Iov = &vector, IovLength = 1, Control = control, ControlLength = controlLength };
                nint sent;
                do
                {
                    sent = SendMessage(socket.SafeHandle, &message, 0);
                }
                while (sent < 0 && Retry(socket, SelectMode.SelectWrite, socket.SendTimeout));

                if (sent < 0)
                {
                    throw new SocketException(Marshal.GetLastPInvokeError());
                }

                if (sent < payload.Length)
                {
                    // The descriptors went with the first byte; the rest of the payload follows as plain bytes.
                    socket.Send(payload[(int)sent..]);
                }
            }
        }
        finally
        {
            foreach (SafeHandle handle in added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Receives one <c>recvmsg</c> worth of bytes into <paramref name="buffer"/> and the descriptors attached to them
    /// (close-on-exec, owned by the caller). Returns the number of bytes (0 at the end of the stream). Blocking.
    /// </summary>
    public static int Receive(Socket socket, Span<byte> buffer, List<int> descriptors)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(descriptors);
        int controlLength = CmsgHeaderSize + Align(MaxDescriptors * sizeof(int));
        byte* control = stackalloc byte[controlLength];
        new Span<byte>(control, controlLength).Clear();
        fixed (byte* data = buffer)
        {
            var vector = new IoVector { Base = data, Length = buffer.Length };
            var message = new MessageHeader { Iov = &vector, IovLength = 1, Control = control, ControlLength = controlLength };
            nint received;
            do
            {
                received = ReceiveMessage(socket.SafeHandle, &message, MsgCmsgCloexec);
            }
            while (received < 0 && Retry(socket, SelectMode.SelectRead, socket.ReceiveTimeout));

            if (received < 0)
            {
                throw new SocketException(Marshal.GetLastPInvokeError());
            }

            // Walk the control messages: each SCM_RIGHTS one carries an array of int descriptors.
            int offset = 0;
            while (offset + CmsgHeaderSize <= (int)message.ControlLength)
            {
                int length = (int)*(nint*)(control + offset);
                int level = *(int*)(control + offset + 8);
                int type = *(int*)(control + offset + 12);
                if (length < CmsgHeaderSize)
                {
                    break;
                }

                if (level == SolSocket && type == ScmRights)
                {
                    int count = (length - CmsgHeaderSize) / sizeof(int);
                    for (int i = 0; i < count; i++)
                    {
                        descriptors.Add(((int*)(control + offset + CmsgHeaderSize))[i]);
                    }
                }

                offset += CmsgHeaderSize + Align(length - CmsgHeaderSize);
            }

            return (int)received;
        }
    }

    /// <summary>The process id and user id of the process at the other end of a connected Unix domain socket.</summary>
    public static (int ProcessId, uint UserId) PeerCredentials(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Credentials credentials;
        int length = sizeof(Credentials);
        if (GetSocketOption(socket.SafeHandle, SolSocket, SoPeerCred, &credentials, &length) != 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        return (credentials.ProcessId, credentials.UserId);
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserId => GetEffectiveUserId();

    /// <summary>
    /// Clears close-on-exec on a socket this process shares with another one. .NET's <see cref="Socket.Dispose()"/>
    /// may disconnect a stream socket that an operation still uses, which on a listening socket would drop the
    /// connections queued on it for the other process too; it leaves alone a socket without close-on-exec, as one that
    /// may be shared.
    /// </summary>
    public static void MarkShared(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        int flags = Fcntl(socket.SafeHandle, FGetFd, 0);
        if (flags >= 0)
        {
            _ = Fcntl(socket.SafeHandle, FSetFd, flags & ~FdCloexec);
        }
    }

    /// <summary>
    /// After a failed call: true to try again, on EINTR, or on EAGAIN once the socket is ready (a socket .NET used
    /// asynchronously stays non-blocking underneath, whatever <see cref="Socket.Blocking"/> says); false otherwise.
    /// </summary>
    private static bool Retry(Socket socket, SelectMode mode, int timeoutMilliseconds)
    {
        int error = Marshal.GetLastPInvokeError();
        if (error == 4)
        {
            return true;
        }

        if (error != 11)
        {
            return false;
        }

        if (!socket.Poll(timeoutMilliseconds > 0 ? TimeSpan.FromMilliseconds(timeoutMilliseconds) : Timeout.InfiniteTimeSpan, mode))
        {
            Marshal.SetLastPInvokeError(110); // ETIMEDOUT
            return false;
        }

        return true;
    }

    private static int Align(int length) => (length + 7) & ~7;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVector
    {
        public byte* Base;
        public nint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Iov;
        public nint IovLength;
        public void* Control;
        public nint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Credentials
    {
        public int ProcessId;
        public uint UserId;
        public uint GroupId;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMessage(SafeHandle socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint ReceiveMessage(SafeHandle socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSocketOption(SafeHandle socket, int level, int name, void* value, int* length);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeHandle descriptor, int command, int argument);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
