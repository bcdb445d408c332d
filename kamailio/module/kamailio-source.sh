#!/usr/bin/env bash
# kamailio-source.sh DIR: unpacks into DIR/kamailio the source of the
# Kamailio release installed on this host (Debian ships no kamailio-dev), so
# that the stirgate module is compiled against the exact headers and
# compile-time defines of the binary it loads into. Cached: a tree of the
# right version is reused.
#
# The system's apt configuration is not changed: the deb-src entries are
# derived from its enabled deb entries (same mirrors, suites, components
# and keys) into a private apt state under DIR.
set -euo pipefail

dir=${1:?usage: kamailio-source.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

version=$(dpkg-query -W -f='${Version}' kamailio 2>/dev/null) ||
	{ echo "kamailio-source: the Debian package kamailio is not installed" >&2; exit 1; }
stamp="$dir/kamailio/.debian-version"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$version" && -f "$dir/kamailio/src/Makefile.defs" ]]; then
	exit 0
fi
command -v dpkg-source >/dev/null || { echo "kamailio-source: dpkg-source missing (Debian package dpkg-dev)" >&2; exit 1; }

apt="$dir/apt"
rm -rf "$apt"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/preferences.d"
# deb822 files: every stanza offering binaries also offers sources. One-line
# files: each "deb" line gets its "deb-src" twin.
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
	sed -E 's/^Types:.*\bdeb\b.*$/Types: deb-src/I' "$f" >"$apt/sources.list.d/$(basename "$f")"
done
: >"$apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[[ -f "$f" ]] && sed -nE 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' "$f" >>"$apt/sources.list"
done
opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
	-o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -qq update
work="$dir/download"
rm -rf "$work"
mkdir -p "$work"
(cd "$work" && apt-get "${opts[@]}" -qq --download-only source "kamailio=$version")
dsc=$(ls "$work"/kamailio_*.dsc)
rm -rf "$dir/kamailio"
dpkg-source --no-check -x "$dsc" "$dir/kamailio" >/dev/null
echo "$version" >"$stamp"
rm -rf "$work"
echo "kamailio-source: Kamailio $version in $dir/kamailio"
