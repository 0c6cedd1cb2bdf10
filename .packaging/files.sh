#!/bin/sh
# Writes the packages' generated files into OUT (target/assets):
#   copyright   Debian's machine-readable form (DEP-5), with the full MIT
#               text of LICENSE: MIT is not in /usr/share/common-licenses.
#   changelog   Debian changelog, from the README's "Changes" section.
#   hvkvp.spec  the rpm's spec, its %changelog from the same section.
# One source for each fact: the version, summary and maintainer come from
# Cargo.toml, the long description from .packaging/description, the
# history from README.md, the licence from LICENSE.
# Usage: sh .packaging/files.sh OUT (from the top of the repository)
set -eu
out=$1
mkdir -p "$out"

# A `key = "value"` of Cargo.toml, the first one of that key.
toml() { sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" Cargo.toml | head -n 1; }
version=$(toml version)
summary=$(toml description)
maintainer=$(toml maintainer)
release=1

# DEP-5: a License paragraph is the text indented by one space, and an
# empty line is " .".
holder=$(sed -n 's/^Copyright (c) //p' LICENSE)
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: hvkvp"
    echo
    echo "Files: *"
    echo "Copyright: $holder"
    echo "License: MIT"
    echo
    echo "License: MIT"
    sed -e '1,/^Copyright (c) /d' LICENSE | sed -e '/./,$!d' \
        -e 's/^$/./' -e 's/^/ /'
} > "$out/copyright"

# The "Changes" section: "### VERSION (YYYY-MM-DD)" headings, each followed
# by "- " items whose continuation lines are indented by two spaces.
changes() { sed -n '/^## Changes$/,/^## /{/^## /!p;}' README.md; }
first=$(changes | sed -n 's/^### \([^ ]*\) .*/\1/p' | head -n 1)
if [ "$first" != "$version" ]; then
    echo "$0: README.md \"Changes\" starts with ${first:-nothing}," \
         "not Cargo.toml's version $version: add an entry" >&2
    exit 1
fi

# "VERSION DATE" of each entry, newest first; the items of one version.
headings() { changes | sed -n 's/^### \(.*\) (\(.*\))$/\1 \2/p'; }
items() {
    changes | sed -n "/^### $(echo "$1" | sed 's/\./\\./g') /,/^### /{/^###/!p;}" |
        sed '/^$/d'
}
day() { LC_ALL=C date -u -d "$1 12:00" "$2"; }

headings | {
    sep=
    while read -r v d; do
        [ -z "$sep" ] || echo
        sep=1
        echo "hvkvp ($v-$release) unstable; urgency=medium"
        echo
        items "$v" | sed -e 's/^  /    /' -e 's/^- /  * /'
        echo
        echo " -- $maintainer  $(day "$d" -R)"
    done
} > "$out/changelog"

# The binary rpm of the files `make rpm` has built and generated; rpmbuild
# is given hvkvp_bin (the release binary), hvkvp_assets (OUT) and hvkvp_src
# (the repository).
{
    cat <<RPMSPEC
Name:           hvkvp
Version:        $version
Release:        $release
Summary:        $summary
License:        MIT
Group:          Applications/System
Packager:       $maintainer
Suggests:       hyperv-daemons

# Built by cargo beforehand, already stripped: no debug package, and no
# build-id links that another package's binary could own too.
%global debug_package %{nil}
%global _build_id_links none
# The man page is compressed here, the same on every rpmbuild: Debian's
# brp-compress needs a bash for /bin/sh.
%global __brp_compress %{nil}

%description
$(cat .packaging/description)

%install
install -Dm755 %{hvkvp_bin} %{buildroot}%{_bindir}/hvkvp
install -Dm644 %{hvkvp_assets}/hvkvp.1 %{buildroot}%{_mandir}/man1/hvkvp.1
gzip -9n %{buildroot}%{_mandir}/man1/hvkvp.1
install -Dm644 %{hvkvp_assets}/hvkvp.bash %{buildroot}%{_datadir}/bash-completion/completions/hvkvp
install -Dm644 %{hvkvp_assets}/_hvkvp %{buildroot}%{_datadir}/zsh/site-functions/_hvkvp
install -Dm644 %{hvkvp_assets}/hvkvp.fish %{buildroot}%{_datadir}/fish/vendor_completions.d/hvkvp.fish
install -Dm644 %{hvkvp_src}/README.md %{buildroot}%{_docdir}/hvkvp/README.md
install -Dm644 %{hvkvp_src}/LICENSE %{buildroot}%{_licensedir}/hvkvp/LICENSE

%files
%{_bindir}/hvkvp
%{_mandir}/man1/hvkvp.1.gz
%{_datadir}/bash-completion/completions/hvkvp
%{_datadir}/zsh/site-functions/_hvkvp
%{_datadir}/fish/vendor_completions.d/hvkvp.fish
%dir %{_docdir}/hvkvp
%doc %{_docdir}/hvkvp/README.md
%dir %{_licensedir}/hvkvp
%license %{_licensedir}/hvkvp/LICENSE

%changelog
RPMSPEC
    headings | {
        sep=
        while read -r v d; do
            [ -z "$sep" ] || echo
            sep=1
            echo "* $(day "$d" '+%a %b %d %Y') $maintainer - $v-$release"
            items "$v"
        done
    }
} > "$out/hvkvp.spec"
