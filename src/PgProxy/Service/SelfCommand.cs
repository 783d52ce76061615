using System.Diagnostics;

namespace PgProxy.Host.Service;

/// <summary>
/// How to start this same pgproxy again as a child process, whichever way it was started: the single-file binary or
/// an apphost (the dotnet tool's shim included) is <see cref="Environment.ProcessPath"/> itself; under
/// <c>dotnet pgproxy.dll</c> the process is <c>dotnet</c>, and the assembly beside this one is its first argument.
/// </summary>
internal static class SelfCommand
{
    public static ProcessStartInfo For(IEnumerable<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        var startInfo = new ProcessStartInfo(process) { UseShellExecute = false };
        if (string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.Ordinal))
        {
            startInfo.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "pgproxy.dll"));
        }

        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        return startInfo;
    }
}
