#!/usr/bin/env bash
# scripts/acl.sh render DIR — the Redis users of conf/juki-users.acl.in for one Redis.
#
# Writes DIR/users.acl (for redis-server's "aclfile") and, for each role, a random
# password in DIR/ROLE.pass (mode 600; ROLE: admin gw control reader archiver). The
# ACL file holds only their SHA-256 ("#..."), as redis-server accepts it. Passwords
# that already exist in DIR are kept, so a restart keeps its users.
set -euo pipefail

prog=scripts/acl.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

[[ $# -eq 2 && $1 == render ]] || { printf 'usage: %s render DIR\n' "$prog" >&2; exit 2; }
dir=$2
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
template=$root/conf/juki-users.acl.in
[[ -f $template ]] || die "$template missing"
command -v openssl >/dev/null 2>&1 || die "openssl not found (run scripts/deps.sh)"
mkdir -p -- "$dir"

umask 077
sed_args=()
for role in admin gw control reader archiver; do
    pass=$dir/$role.pass
    if [[ ! -s $pass ]]; then
        openssl rand -hex 24 >"$pass.tmp" || die "openssl rand failed"
        mv -f -- "$pass.tmp" "$pass"
    fi
    hash=$(tr -d '\n' <"$pass" | sha256sum | awk '{ print $1 }')
    [[ $hash =~ ^[0-9a-f]{64}$ ]] || die "cannot hash $pass"
    sed_args+=(-e "s/@${role^^}@/#$hash/")
done

# redis-server reads only user lines: comments and blank lines go
sed "${sed_args[@]}" -e '/^#/d' -e '/^$/d' "$template" >"$dir/users.acl.tmp"
if grep -q '@[A-Z]*@' "$dir/users.acl.tmp"; then
    rm -f -- "$dir/users.acl.tmp"
    die "a placeholder of $template has no password"
fi
mv -f -- "$dir/users.acl.tmp" "$dir/users.acl"
