using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PgProxy.Core.Tls;

/// <summary>A certificate, key or verifier file that cannot be used; the message names the file and the key that points at it.</summary>
public sealed class SecurityMaterialException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Reads the PEM files named by <c>listen.tls</c> and <c>redirect.tls</c>, failing with the file's name.</summary>
internal static class TlsFiles
{
    /// <summary>A certificate with its private key; the certificate file may carry intermediates after the leaf.</summary>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Intermediates) LoadCertificateWithKey(
        string key, string certFile, string keyFile, string? keyPassword)
    {
        EnsureReadable($"{key}.cert-file", certFile);
        EnsureReadable($"{key}.key-file", keyFile);
        PrivateKeyPermissions.Check($"{key}.key-file", keyFile);
        X509Certificate2Collection all = LoadCertificates($"{key}.cert-file", certFile);
        X509Certificate2 certificate;
        try
        {
            certificate = keyPassword is null
                ? X509Certificate2.CreateFromPemFile(certFile, keyFile)
                : X509Certificate2.CreateFromEncryptedPemFile(certFile, keyPassword, keyFile);
        }
        catch (CryptographicException e)
        {
            string hint = keyPassword is null ? " (an encrypted key needs key-password)" : " (is key-password right?)";
            throw new SecurityMaterialException($"{key}.key-file {keyFile}: not a usable private key for {certFile}: {e.Message}{hint}", e);
        }
        catch (ArgumentException e)
        {
            throw new SecurityMaterialException($"{key}.key-file {keyFile}: not a usable private key for {certFile}: {e.Message}", e);
        }

        var intermediates = new X509Certificate2Collection();
        for (int i = 1; i < all.Count; i++)
        {
            intermediates.Add(all[i]);
        }

        return (certificate, intermediates);
    }

    /// <summary>Every PEM certificate of a file (a CA bundle, or a certificate and its chain); at least one.</summary>
    public static X509Certificate2Collection LoadCertificates(string key, string file)
    {
        EnsureReadable(key, file);
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(file);
        }
        catch (CryptographicException e)
        {
            throw new SecurityMaterialException($"{key} {file}: not a PEM certificate file: {e.Message}", e);
        }

        return certificates.Count > 0
            ? certificates
            : throw new SecurityMaterialException($"{key} {file}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }

    public static void EnsureReadable(string key, string file)
    {
        try
        {
            using FileStream stream = File.OpenRead(file);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new SecurityMaterialException($"{key} {file}: the file does not exist", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new SecurityMaterialException($"{key} {file}: the file cannot be read (permission denied, or it is a directory)", e);
        }
        catch (IOException e)
        {
            throw new SecurityMaterialException($"{key} {file}: the file cannot be read: {e.Message}", e);
        }
    }
}
