using System.Globalization;
using System.Runtime.InteropServices;

namespace PgProxy.Core.Tls;

/// <summary>
/// PostgreSQL's rule for a private key file (be-secure-common.c, and libpq's for a client key), applied before the key
/// is read: a regular file owned by the user PgProxy runs as with no group or other access (0600 or less), or owned by
/// root with at most group read (0640 or less, so a package can share the key through a group such as ssl-cert).
/// A key others can read has leaked already, and refusing it at start-up says so before a session depends on it.
/// </summary>
internal static partial class PrivateKeyPermissions
{
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private const UnixFileMode MoreThanGroupRead = GroupOrOther & ~UnixFileMode.GroupRead;

    /// <summary>Refuses <paramref name="file"/> (named by setting <paramref name="key"/>) when its owner or mode is looser than PostgreSQL allows.</summary>
    /// <exception cref="SecurityMaterialException">One line naming the key, the file, what it has and what it needs.</exception>
    public static void Check(string key, string file)
    {
        if (OperatingSystem.IsWindows())
        {
            return; // no such modes
        }

        Statx status = default;
        bool ownerKnown = OperatingSystem.IsLinux();
        try
        {
            if (ownerKnown && StatxCall(AtCurrentDirectory, file, 0, StatxBasicStats, ref status) != 0)
            {
                // Unreadable metadata of a file just opened is an error to say, not a reason to let the key through.
                throw new SecurityMaterialException(
                    $"{key} {file}: its owner and permissions cannot be read (errno {Marshal.GetLastPInvokeError().ToString(CultureInfo.InvariantCulture)})");
            }
        }
        catch (EntryPointNotFoundException)
        {
            ownerKnown = false; // a C library without statx (glibc before 2.28)
        }

        if (!ownerKnown)
        {
            // The owner cannot be read here, so the looser of the two rules applies.
            Require(key, file, File.GetUnixFileMode(file), MoreThanGroupRead, "0640 or less");
            return;
        }

        var mode = (UnixFileMode)(status.Mode & 0xfff);
        if ((status.Mode & FileTypeMask) != RegularFile)
        {
            throw new SecurityMaterialException($"{key} {file}: a private key must be a regular file");
        }

        uint self = GetEffectiveUserId();
        if (status.Uid != self && status.Uid != 0)
        {
            throw new SecurityMaterialException(
                $"{key} {file}: a private key must be owned by the user PgProxy runs as (uid {self.ToString(CultureInfo.InvariantCulture)}) or by root; it is owned by uid {status.Uid.ToString(CultureInfo.InvariantCulture)}");
        }

        if (status.Uid == self)
        {
            Require(key, file, mode, GroupOrOther, "0600 or less, as it is owned by the user PgProxy runs as");
        }

        if (status.Uid == 0)
        {
            Require(key, file, mode, MoreThanGroupRead, "0640 or less, as it is owned by root");
        }
    }

    private static void Require(string key, string file, UnixFileMode mode, UnixFileMode forbidden, string needed)
    {
        if ((mode & forbidden) != 0)
        {
            throw new SecurityMaterialException(
                $"{key} {file}: permissions {Octal(mode)} are too open for a private key; it needs {needed} (chmod 600 {file})");
        }
    }

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0x1ff, 8).PadLeft(3, '0');

    private const int AtCurrentDirectory = -100;
    private const uint StatxBasicStats = 0x7ff;
    private const ushort FileTypeMask = 0xf000;
    private const ushort RegularFile = 0x8000;

    /// <summary>
    /// The head of struct statx, whose layout is the same on every Linux architecture (unlike struct stat): uid at 20,
    /// mode at 28, 256 bytes in all.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct Statx
    {
        [FieldOffset(20)]
        public uint Uid;

        [FieldOffset(28)]
        public ushort Mode;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxCall(int directory, string path, int flags, uint mask, ref Statx status);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
