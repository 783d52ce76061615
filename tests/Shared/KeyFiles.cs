namespace PgProxy.TestSupport;

/// <summary>Private key files as an operator must leave them: PgProxy refuses a key others can read, as PostgreSQL does.</summary>
internal static class KeyFiles
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Writes <paramref name="pem"/> to <paramref name="path"/> with mode 0600, also when the file was there with another mode.</summary>
    public static void Write(string path, string pem)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnly;
        }

        using (var writer = new StreamWriter(path, options))
        {
            writer.Write(pem);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, OwnerOnly);
        }
    }
}
