using Microsoft.Win32.SafeHandles;

namespace PgProxy.Core.Listening;

/// <summary>
/// A few file descriptors held open (on /dev/null) for when the process runs out: an accept that fails with EMFILE
/// or ENFILE releases them, so that the runtime keeps room for what it must open itself (a new thread takes a pipe
/// and a file), and the pending connection can be accepted and told why it is refused instead of being left queued.
/// </summary>
internal static class DescriptorReserve
{
    /// <summary>Enough for a few thread-pool threads to start (two descriptors each, briefly) and one connection.</summary>
    private const int Size = 16;

    private static readonly Lock Gate = new();
    private static readonly List<SafeFileHandle> Held = [];

    /// <summary>Opens the reserve (what is missing of it); false when descriptors are still short.</summary>
    public static bool TryFill()
    {
        lock (Gate)
        {
            try
            {
                while (Held.Count < Size)
                {
                    Held.Add(File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read));
                }

                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
    }

    /// <summary>Closes the reserve; true when it held something to give back.</summary>
    public static bool Release()
    {
        lock (Gate)
        {
            bool held = Held.Count > 0;
            foreach (SafeFileHandle handle in Held)
            {
                handle.Dispose();
            }

            Held.Clear();
            return held;
        }
    }
}
