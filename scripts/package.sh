#!/usr/bin/env bash
# Builds what PgProxy ships, into artifacts/:
#   artifacts/linux-x64/pgproxy, artifacts/linux-arm64/pgproxy   self-contained single files, built-in plugins beside them
#   artifacts/pgproxy_VERSION_amd64.deb                            the Debian package (dpkg-deb), systemd service included:
#                                                                  a self-contained ReadyToRun folder, not the single file
#   artifacts/pgproxy.VERSION.nupkg                                the dotnet tool (framework-dependent)
# No arguments. Needs the .NET 10 SDK and dpkg-deb (Debian's dpkg). Builds in artifacts/.build, apart from the
# solution's own bin/ and obj/, so that a package build and a `dotnet build` never overwrite each other.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

note() { printf 'package.sh: %s\n' "$*" >&2; }

if (( $# > 0 )); then
    note "takes no arguments (got: $*)"
    exit 2
fi
for tool in dotnet dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        note "$tool is missing (dpkg-deb comes with Debian's dpkg package)"
        exit 1
    fi
done

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
host_project="src/PgProxy/PgProxy.csproj"
artifacts="$repo_root/artifacts"
work="$artifacts/.build"

# The version of Directory.Build.props, without a pre-release suffix: the tool's package id and the .deb want a plain one.
version="$(dotnet msbuild "$host_project" -nologo -getProperty:Version)"
version="${version%%-*}"
version="${version%%+*}"
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    note "cannot read the version from $host_project (got '$version')"
    exit 1
fi
note "PgProxy $version"

rm -rf "$artifacts/linux-x64" "$artifacts/linux-arm64" "$work/publish" "$work/deb"
rm -f "$artifacts"/pgproxy_*.deb "$artifacts"/pgproxy.*.nupkg
mkdir -p "$artifacts" "$work"

# --- self-contained single files. The whole bundle unpacks itself on first start (IncludeAllContentForSelfExtract):
# source plugins are compiled with Roslyn against the runtime's assemblies, which must be files on disk. The unpacked
# copy goes to DOTNET_BUNDLE_EXTRACT_BASE_DIR, else ~/.net. The .pdb
# files stay in artifacts/.build/publish/RID, for reading a stack trace.
publish() {
    local rid="$1" started=$SECONDS
    dotnet publish "$host_project" -c Release -r "$rid" --self-contained \
        -p:PublishSingleFile=true -p:IncludeAllContentForSelfExtract=true \
        -p:Version="$version" --artifacts-path "$work" -o "$work/publish/$rid" -nologo -v q
    mkdir -p "$artifacts/$rid"
    cp "$work/publish/$rid/pgproxy" "$artifacts/$rid/pgproxy"
    # Built-in plugins beside the binary, where PgProxy looks after settings.plugin-dir.
    mkdir -p "$artifacts/$rid/plugins"
    for plugin in "$work/publish/$rid/plugins"/*/; do
        mkdir -p "$artifacts/$rid/plugins/$(basename "$plugin")"
        cp "$plugin"*.dll "$artifacts/$rid/plugins/$(basename "$plugin")/"
    done
    note "$rid: $(du -h "$artifacts/$rid/pgproxy" | cut -f1) in $((SECONDS - started)) s"
}
publish linux-x64
publish linux-arm64

# --- what the .deb installs in /usr/lib/pgproxy: the same program as a self-contained folder, precompiled (ReadyToRun,
# one image per assembly; Roslyn left as IL, see src/PgProxy/PgProxy.csproj). A folder needs no unpacking, so the
# service writes no copy of itself, and an upgrade replaces the files under a running process, which can hand over
# to the new version at once (postinst). Measured in bench/README.md ("Footprint"): 6 MB less resident than the
# unpacked single file and half its start-up time. Its own artifacts path: ReadyToRun outputs must not mix with
# the single files' build.
publish_folder() {
    local rid="$1" started=$SECONDS
    dotnet publish "$host_project" -c Release -r "$rid" --self-contained \
        -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=false \
        -p:Version="$version" --artifacts-path "$work/r2r" -o "$work/publish/$rid-folder" -nologo -v q
    find "$work/publish/$rid-folder" -name '*.pdb' -delete
    note "$rid folder (ReadyToRun): $(du -sh "$work/publish/$rid-folder" | cut -f1) in $((SECONDS - started)) s"
}
publish_folder linux-x64

# --- the Debian package, for amd64 (the linux-x64 binary).
deb_root="$work/deb/pgproxy"
install -d "$deb_root/DEBIAN" "$deb_root/usr/lib/pgproxy" "$deb_root/usr/bin" "$deb_root/etc/pgproxy" \
    "$deb_root/lib/systemd/system" "$deb_root/usr/share/doc/pgproxy" "$deb_root/var/log/pgproxy" "$deb_root/var/cache/pgproxy"
cp -r "$work/publish/linux-x64-folder/." "$deb_root/usr/lib/pgproxy/"
find "$deb_root/usr/lib/pgproxy" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
chmod 0755 "$deb_root/usr/lib/pgproxy/pgproxy"
# /usr/bin/pgproxy is a link: the program finds its assemblies and plugins beside its real path (/usr/lib/pgproxy).
ln -s ../lib/pgproxy/pgproxy "$deb_root/usr/bin/pgproxy"
install -m 0644 packaging/pgproxy.yml "$deb_root/etc/pgproxy/pgproxy.yml"
install -m 0644 packaging/systemd/pgproxy.service "$deb_root/lib/systemd/system/pgproxy.service"
for doc in README.md docs/operations.md docs/configuration.md docs/plugins.md; do
    [[ -f "$doc" ]] && install -m 0644 "$doc" "$deb_root/usr/share/doc/pgproxy/$(basename "$doc")"
done
install -m 0644 packaging/deb/conffiles "$deb_root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$script" "$deb_root/DEBIAN/$script"
done
installed_size="$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/amd64/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    packaging/deb/control.in >"$deb_root/DEBIAN/control"
deb="$artifacts/pgproxy_${version}_amd64.deb"
# xz at its default level takes minutes on 120 MB of program; level 3 is a few seconds for a few MB more.
dpkg-deb --root-owner-group -Zxz -z3 --build "$deb_root" "$deb" >/dev/null
note "$(basename "$deb"): $(du -h "$deb" | cut -f1)"

# --- the dotnet tool: `dotnet tool install -g pgproxy --add-source artifacts/`.
dotnet pack "$host_project" -c Release -p:Version="$version" --artifacts-path "$work" -o "$artifacts" -nologo -v q >/dev/null
nupkg="$artifacts/pgproxy.$version.nupkg"
if [[ ! -f "$nupkg" ]]; then
    note "dotnet pack did not write $nupkg"
    exit 1
fi
note "$(basename "$nupkg"): $(du -h "$nupkg" | cut -f1)"
