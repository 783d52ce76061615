using System.Diagnostics;
using PgProxy.Core.Plugins;
using PgProxy.Host.Service;

namespace PgProxy.Host;

/// <summary>
/// Source plugins compiled in a child process: the same pgproxy, run with the hidden <c>compile-plugin</c> command.
/// A compile in the long-running process left about 40 MB of Roslyn resident for good (98 MB against 56 MB when the
/// same plugin came from the cache, bench/footprint.sh); the child takes that memory with it when it exits. The child
/// writes the image and PDB to files the parent reads, then stores in the plugin cache as before; a compile error is
/// the child's standard error, word for word what an in-process compile reports.
/// </summary>
internal static class PluginCompileCommand
{
    public const string Name = "compile-plugin";

    /// <summary>The child process's exit code for a plugin that does not compile (its message on standard error).</summary>
    private const int CompileFailed = 4;

    private static readonly TimeSpan ChildDeadline = TimeSpan.FromMinutes(5);

    /// <summary>Makes every source plugin of this process compile in a child process.</summary>
    public static void Install() => PluginCompilation.OutOfProcess = CompileInChild;

    /// <summary>The child: compiles <paramref name="files"/> and writes OUTPUT.dll and OUTPUT.pdb.</summary>
    public static int Run(string assemblyName, string describedAs, string output, IReadOnlyList<string> files)
    {
        try
        {
            (byte[] image, byte[] pdb) = PluginCompilation.CompileHere(assemblyName, files, describedAs);
            File.WriteAllBytes(output + ".pdb", pdb);
            File.WriteAllBytes(output + ".dll", image);
            return Commands.Success;
        }
        catch (PluginLoadException e)
        {
            Console.Error.Write(e.Message);
            return CompileFailed;
        }
    }

    /// <summary>The parent: null when no child could be run or it failed for another reason (the compile then runs here).</summary>
    private static (byte[] Image, byte[] Pdb)? CompileInChild(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
        string folder = Path.Combine(Path.GetTempPath(), $"pgproxy-compile-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(folder);
            string output = Path.Combine(folder, assemblyName);
            ProcessStartInfo startInfo = SelfCommand.For(["compile-plugin", "--name", assemblyName, "--described-as", describedAs, "--output", output, .. files]);
            startInfo.RedirectStandardError = true;
            startInfo.RedirectStandardOutput = true;
            using Process child = Process.Start(startInfo) ?? throw new InvalidOperationException("the compile process did not start");
            Task<string> errors = child.StandardError.ReadToEndAsync();
            Task<string> ignored = child.StandardOutput.ReadToEndAsync();
            if (!child.WaitForExit(ChildDeadline))
            {
                child.Kill();
                return null;
            }

            child.WaitForExit();
            string message = errors.GetAwaiter().GetResult();
            _ = ignored.GetAwaiter().GetResult();
            return child.ExitCode switch
            {
                Commands.Success => (File.ReadAllBytes(output + ".dll"), File.ReadAllBytes(output + ".pdb")),
                CompileFailed => throw new PluginLoadException(message),
                _ => null,
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
        finally
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A temporary folder left behind.
            }
        }
    }
}
