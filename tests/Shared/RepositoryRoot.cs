namespace PgProxy.TestSupport;

/// <summary>The repository's root folder (the one holding PgProxy.slnx), found upward from the test assembly.</summary>
internal static class RepositoryRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(System.IO.Path.Combine(directory.FullName, "PgProxy.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("PgProxy.slnx not found above " + AppContext.BaseDirectory);
    }
}
