namespace PgProxy.Core.Plugins;

/// <summary>
/// A plugin could not be found, compiled or loaded, or an interceptor entry names a function it does not have. The
/// message names the plugin and the configuration line, and for a compile error each file, line and compiler message.
/// </summary>
public sealed class PluginLoadException : Exception
{
    public PluginLoadException()
    {
    }

    public PluginLoadException(string message)
        : base(message)
    {
    }

    public PluginLoadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
