#!/bin/sh
# The image's entrypoint: runs its arguments (the real `mailgate` command) as the mailgate user.
#
# Started as root (the image's default, and `docker exec`): first make what mailgate needs
# usable by that user, so that a root-owned bind mount or secret does not stop start-up:
#   - the data directory ($MAILGATE_SERVER_DATA_DIR, /data) and what is in it are given to it;
#   - a TLS key or certificate (MAILGATE_TLS_KEY, MAILGATE_TLS_CERT) it cannot read, such as a
#     secret mounted for root only, is copied for it into a private directory in /run;
#   - HOME becomes that user's (/data), not root's: asyncpg looks in ~/.postgresql for client
#     certificates and stops at a /root it may not enter (PermissionError);
# then drop root for good, keeping only the right to bind ports below 1024 (an ambient
# capability), which --network host needs: Docker lets unprivileged processes bind low ports
# only inside a network namespace of the container's own.
# Started as another user (--user, Kubernetes' runAsUser): the command just runs as that user.
set -eu

uid=10001 # the mailgate user and group of the image: fixed, so volumes can be given to them
gid=10001

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

data="${MAILGATE_SERVER_DATA_DIR:-/data}"
mkdir -p "$data"
# Only what is not theirs yet (a restart changes nothing); not into other mounts inside it.
if ! find "$data" -xdev \( ! -user "$uid" -o ! -group "$gid" \) -exec chown -h "$uid:$gid" {} +
then
    echo "mailgate: could not give everything in $data to uid $uid" >&2
fi

as_mailgate() { setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; }

home=$(getent passwd "$uid" | cut -d: -f6) || true
export HOME="${home:-$data}"

runtime="${MAILGATE_RUNTIME_DIR:-/run/mailgate}"
for name in MAILGATE_TLS_KEY MAILGATE_TLS_CERT; do
    eval "path=\${$name:-}"
    if [ -n "$path" ] && [ -f "$path" ] && ! as_mailgate test -r "$path"; then
        install -d -m 700 -o "$uid" -g "$gid" "$runtime"
        copy="$runtime/$(echo "$name" | tr 'A-Z_' 'a-z.' | sed 's/^mailgate\.//')" # tls.key
        install -m 600 -o "$uid" -g "$gid" "$path" "$copy"
        export "$name=$copy"
    fi
done

# CAP_NET_BIND_SERVICE is capability 10; it is passed on only if this container has it.
permitted=$(sed -n 's/^CapPrm:[[:space:]]*//p' /proc/self/status)
if [ $((0x$permitted >> 10 & 1)) = 1 ]; then
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- "$@"
fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- "$@"
