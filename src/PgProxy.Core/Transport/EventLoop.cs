using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PgProxy.Core.Transport;

/// <summary>
/// One thread waiting on one epoll set, edge-triggered, and running what each readiness event wakes (a session's pump)
/// right there. A session's two sockets share a loop, so a query crosses the proxy on one thread: the client's bytes
/// are read when epoll says they are there (no speculative receive that fails with EAGAIN), sent upstream, and the
/// loop goes back to epoll_wait. This is the shape of PgBouncer's event loop, with one loop per core.
/// </summary>
internal sealed unsafe class EventLoop
{
    private const int MaxEventsPerWait = 256;

    private readonly int epollFd;
    private readonly Lock registrationLock = new();
    private readonly Stack<int> freeSlots = new();

    // Events carry (generation << 32 | slot): an event still queued for a socket that was closed, whose slot was reused,
    // does not reach the new socket.
    private LoopSocketStream?[] slots = new LoopSocketStream?[64];
    private uint[] generations = new uint[64];
    private int usedSlots;

    private EventLoop(int epollFd, string name)
    {
        this.epollFd = epollFd;
        var thread = new Thread(Run) { IsBackground = true, Name = name };
        thread.UnsafeStart();
    }

    /// <summary>Starts a loop. Throws when epoll is not available.</summary>
    public static EventLoop Start(string name)
    {
        int fd = LinuxSockets.EpollCreate(LinuxSockets.EpollCloExec);
        if (fd < 0)
        {
            throw LinuxSockets.Failure(Marshal.GetLastPInvokeError(), "create an event loop for");
        }

        return new EventLoop(fd, name);
    }

    /// <summary>Adds a socket: from now on its readiness events reach <paramref name="socket"/>.</summary>
    internal ulong Register(LoopSocketStream socket, SafeSocketHandle handle)
    {
        ulong key;
        lock (registrationLock)
        {
            int slot;
            if (!freeSlots.TryPop(out slot))
            {
                slot = usedSlots++;
                if (slot == slots.Length)
                {
                    // Copied, not resized in place: the loop thread reads the array without the lock.
                    var grown = new LoopSocketStream?[slots.Length * 2];
                    Array.Copy(slots, grown, slots.Length);
                    var grownGenerations = new uint[slots.Length * 2];
                    Array.Copy(generations, grownGenerations, generations.Length);
                    generations = grownGenerations;
                    Volatile.Write(ref slots, grown);
                }
            }

            uint generation = ++generations[slot];
            key = ((ulong)generation << 32) | (uint)slot;
            socket.Key = key;
            Volatile.Write(ref slots[slot], socket);
        }

        byte* epollEvent = stackalloc byte[16];
        Unsafe.WriteUnaligned(epollEvent, LinuxSockets.EpollIn | LinuxSockets.EpollOut | LinuxSockets.EpollRdHup | LinuxSockets.EpollEdgeTriggered);
        Unsafe.WriteUnaligned(epollEvent + LinuxSockets.EpollDataOffset, key);
        if (LinuxSockets.EpollCtl(epollFd, LinuxSockets.EpollCtlAdd, handle, epollEvent) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Release(key);
            throw LinuxSockets.Failure(errno, "register");
        }

        return key;
    }

    /// <summary>Removes a socket before it is closed.</summary>
    internal void Unregister(ulong key, SafeSocketHandle handle)
    {
        // Closing the descriptor would remove it too; removing it first keeps a descriptor shared with another
        // process (none here, but cheap to be sure of) from delivering events to a slot that moved on.
        byte* unused = stackalloc byte[16];
        _ = LinuxSockets.EpollCtl(epollFd, LinuxSockets.EpollCtlDel, handle, unused);
        Release(key);
    }

    private void Release(ulong key)
    {
        int slot = (int)(uint)key;
        lock (registrationLock)
        {
            if (slots[slot] is { } socket && socket.Key == key)
            {
                Volatile.Write(ref slots[slot], null);
                freeSlots.Push(slot);
            }
        }
    }

    private void Run()
    {
        int eventSize = LinuxSockets.EpollEventSize;
        int dataOffset = LinuxSockets.EpollDataOffset;
        byte* events = (byte*)NativeMemory.Alloc((nuint)(MaxEventsPerWait * eventSize));
        while (true)
        {
            int count = LinuxSockets.EpollWait(epollFd, events, MaxEventsPerWait, -1);
            if (count < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LinuxSockets.EIntr)
                {
                    continue;
                }

                // epoll_wait fails only on a bad descriptor or buffer: a defect, and every session on this loop would hang.
                Environment.FailFast($"PgProxy event loop: epoll_wait failed with errno {errno}");
            }

            LoopSocketStream?[] current = Volatile.Read(ref slots);
            for (int i = 0; i < count; i++)
            {
                byte* entry = events + (i * eventSize);
                uint ready = Unsafe.ReadUnaligned<uint>(entry);
                ulong key = Unsafe.ReadUnaligned<ulong>(entry + dataOffset);
                int slot = (int)(uint)key;
                LoopSocketStream? socket = slot < current.Length ? Volatile.Read(ref current[slot]) : null;
                if (socket is null || socket.Key != key)
                {
                    // Registered after this snapshot of the table was taken, or closed since the event was queued.
                    current = Volatile.Read(ref slots);
                    socket = slot < current.Length ? Volatile.Read(ref current[slot]) : null;
                    if (socket is null || socket.Key != key)
                    {
                        continue;
                    }
                }

                try
                {
                    socket.OnReady(ready);
                }
                catch (Exception e)
                {
                    // What runs here is a pump's continuation, whose exceptions end in its task; anything else is a
                    // defect that must not stop the loop and every session on it.
                    Console.Error.WriteLine($"PgProxy event loop: unexpected exception from a readiness continuation: {e}");
                }
            }
        }
    }
}
