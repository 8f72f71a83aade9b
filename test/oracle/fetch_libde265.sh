#!/usr/bin/env bash
# Fetch Debian's libde265 source package into TARGET_DIR/libde265-src (the test motion-vector oracle's decoder).
#
# Usage: test/oracle/fetch_libde265.sh TARGET_DIR
#
# Idempotent: exits 0 at once when TARGET_DIR/libde265-src/CMakeLists.txt already exists. Otherwise it makes
# sure apt has a deb-src entry for the configured Debian mirror (it copies the non-security `deb` entries of
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.sources as `deb-src` into
# /etc/apt/sources.list.d/arseg-oracle-src.sources when `apt-cache showsrc libde265` finds nothing), runs
# `apt-get update` and `apt-get source libde265` in a scratch folder and moves the unpacked tree into place,
# so an interrupted run never leaves a half-unpacked source behind.
#
# Needs: apt-get, dpkg-dev (dpkg-source unpacks the package), root (or passwordless sudo) to add the entry.
# Environment: LIBDE265_VERSION pins the source version (e.g. 1.0.11-1+deb12u2); default: the mirror's newest.
# Exit status: 0 done; 1 unexpected source layout; 2 usage or missing tool; 3 apt-get unusable here (not root
# and no sudo), could not reach the mirror, or has no libde265 source.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 TARGET_DIR" >&2
    exit 2
fi
target="$1"
dest="$target/libde265-src"
if [[ -f "$dest/CMakeLists.txt" ]]; then
    exit 0
fi

for tool in apt-get apt-cache dpkg-source; do
    if ! command -v "$tool" >/dev/null; then
        echo "fetch_libde265: '$tool' not found (install apt and dpkg-dev)" >&2
        exit 2
    fi
done

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -n "$@"
    else
        echo "fetch_libde265: apt-get unavailable to this user: need root or sudo to run: $*" >&2
        exit 3
    fi
}

# Print deb-src equivalents of the configured non-security `deb` entries (one-line and deb822 formats).
deb_src_entries() {
    local list
    if [[ -f /etc/apt/sources.list ]]; then
        while read -r kind rest; do
            if [[ "$kind" == deb && "$rest" != *security* ]]; then
                printf 'Types: deb-src\n%s\n\n' "$(awk '{
                    i = 1; opts = ""
                    if ($1 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
                    printf "URIs: %s\nSuites: %s\nComponents:", $i, $(i + 1)
                    for (j = i + 2; j <= NF; j++) printf " %s", $j
                    if (opts ~ /signed-by=/) { sub(/.*signed-by=/, "", opts); sub(/[ \]].*/, "", opts)
                        printf "\nSigned-By: %s", opts }
                }' <<<"$rest")"
            fi
        done </etc/apt/sources.list
    fi
    for list in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$list" && "$list" != */arseg-oracle-src.sources ]] || continue
        awk -v RS= -v ORS='\n\n' '
            /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && !/(^|\n)URIs:[^\n]*security/ {
                n = split($0, lines, "\n"); out = ""
                for (k = 1; k <= n; k++) {
                    if (lines[k] ~ /^#/) continue
                    if (lines[k] ~ /^Types:/) lines[k] = "Types: deb-src"
                    out = out (out == "" ? "" : "\n") lines[k]
                }
                print out
            }' "$list"
    done
}

if [[ -z "$(apt-cache showsrc libde265 2>/dev/null)" ]]; then
    entries="$(deb_src_entries)"
    if [[ -z "$entries" ]]; then
        echo "fetch_libde265: no Debian 'deb' entry in /etc/apt/sources.list{,.d/*.sources} to derive deb-src from" >&2
        exit 3
    fi
    if ! printf '%s\n' "$entries" | as_root tee /etc/apt/sources.list.d/arseg-oracle-src.sources >/dev/null; then
        echo "fetch_libde265: cannot write /etc/apt/sources.list.d/arseg-oracle-src.sources" >&2
        exit 3
    fi
    if ! as_root apt-get update -qq; then
        echo "fetch_libde265: 'apt-get update' failed (no network or mirror unreachable?)" >&2
        exit 3
    fi
    if [[ -z "$(apt-cache showsrc libde265 2>/dev/null)" ]]; then
        echo "fetch_libde265: apt knows no libde265 source package even after adding deb-src entries" >&2
        exit 3
    fi
fi

mkdir -p "$target"
scratch="$(mktemp -d "$target/.fetch.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
package="libde265${LIBDE265_VERSION:+=$LIBDE265_VERSION}"
if ! (cd "$scratch" && apt-get source -qq "$package" >apt-get-source.log 2>&1); then
    cat "$scratch/apt-get-source.log" >&2
    echo "fetch_libde265: 'apt-get source $package' failed (no network, mirror unreachable or version gone?)" >&2
    exit 3
fi
unpacked=""
for dir in "$scratch"/libde265-*/; do
    if [[ -f "$dir/CMakeLists.txt" ]]; then
        unpacked="${dir%/}"
        break
    fi
done
if [[ -z "$unpacked" ]]; then
    echo "fetch_libde265: 'apt-get source' produced no libde265-*/CMakeLists.txt in $scratch" >&2
    exit 1
fi
rm -rf "$dest"
mv "$unpacked" "$dest"
echo "fetch_libde265: $(basename "$unpacked") unpacked into $dest"
