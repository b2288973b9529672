#!/bin/sh
# Open MPI's rsh agent for the namespace hosts of tests/e2e/netns.sh (given
# to mpirun as --mca plm_rsh_agent): called as ssh would be, `AGENT HOST WORD...`,
# it runs the words as one shell command line (as ssh does) on HOST: in its
# network namespace and in a UTS namespace named as the host. HOST is a name,
# address or namespace in BS_NETNS_HOSTS ("NAME=NS=ADDR ..."), which mpirun
# passes on in its environment. The environment is inherited, as on a cluster
# whose nodes share a profile.
# The agent process lives on host B, so by default killing B's processes also
# ends mpirun's child, as a dying sshd ends the ssh client. With
# BS_NETNS_DETACH=FILE it instead starts the command detached (output to FILE)
# and exits 0, as `ssh -f` would: mpirun then learns of B only through its TCP
# connections, as when a host loses power or its network.
host=$1
shift
for h in $BS_NETNS_HOSTS; do
  case "=$h=" in
    *"=$host="*)
      name=${h%%=*}
      ns=$(echo "$h" | cut -d= -f2)
      if [ -n "${BS_NETNS_DETACH:-}" ]; then
        setsid ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$name" "$*" \
          </dev/null >>"$BS_NETNS_DETACH" 2>&1 &
        exit 0
      fi
      exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$name" "$*"
      ;;
  esac
done
echo "netns_rsh.sh: no host $host in BS_NETNS_HOSTS=$BS_NETNS_HOSTS" >&2
exit 255
