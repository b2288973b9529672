# shellcheck shell=bash
# Two test "hosts" on one machine, for tests/e2e/two_hosts.sh (root only).
# Sourced after lib.sh. Each host is a named network namespace (bs-<pid>-a,
# bs-<pid>-b) joined to the other by a veth pair (10.231.<x>.1 and .2 /24, lo
# up in both). Every process "on" a host runs in its network namespace and in
# a UTS namespace of its own whose hostname is the host's name, so hostname()
# and MPI_Get_processor_name differ between hosts. `ip netns exec` gives no
# UTS namespace, so on_host adds one with `unshare --uts`.
#
#   hosts_up          makes both hosts; sets host_a/host_b (names), addr_a/addr_b,
#                     subnet, ns_a/ns_b, veth_a/veth_b (the link's ends); exports BS_NETNS_HOSTS for the rsh agent
#   on_host H CMD...  runs CMD on host H (a name, address or namespace)
#   host_pids H       every process in host H's network namespace
#   hosts_down        kills every process on both hosts, deletes the namespaces
#                     (the veth goes with them); also namespaces left by an
#                     earlier run that died (bs-<pid>-* whose pid is gone)
#   mpirun_hosts      the options for mpirun (run on host A) to start ranks on
#                     both hosts through tests/e2e/netns_rsh.sh, over TCP on the veth
#
# hosts_up installs an EXIT/INT/TERM trap that calls hosts_down, so the
# namespaces go however the script ends (short of SIGKILL; the next run's
# hosts_down removes those).
netns_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A namespace of an earlier test whose script is gone: bs-<pid>-a/-b.
netns_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $ns in bs-*-a | bs-*-b) ;; *) continue ;; esac
    pid=${ns#bs-}; pid=${pid%-?}
    [ "$pid" != "$$" ] && ! kill -0 "$pid" 2>/dev/null && echo "$ns"
  done
}

netns_kill_all() {  # netns_kill_all NS: SIGKILL to every process in NS until none is left
  local pids
  for _ in $(seq 50); do
    pids=$(ip netns pids "$1" 2>/dev/null)
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086 # one word per pid
    kill -9 $pids 2>/dev/null
    sleep 0.1
  done
  return 1
}

hosts_down() {
  local ns
  for ns in ${ns_a:-} ${ns_b:-} $(netns_stale); do
    ip netns list | grep -qw "^$ns" || continue
    netns_kill_all "$ns"
    ip netns del "$ns" 2>/dev/null
  done
  ns_a='' ns_b=''
}

hosts_up() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "FAILED: two_hosts needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to make network and UTS namespaces"
    exit 1
  fi
  hosts_down
  trap 'hosts_down' EXIT
  trap 'hosts_down; exit 130' INT
  trap 'hosts_down; exit 143' TERM
  local x=$(($$ % 200 + 20))
  ns_a=bs-$$-a ns_b=bs-$$-b host_a=bshost$$a host_b=bshost$$b veth_a=bs$$a veth_b=bs$$b
  addr_a=10.231.$x.1 addr_b=10.231.$x.2 subnet=10.231.$x.0/24
  if ! { ip netns add "$ns_a" && ip netns add "$ns_b" &&
    ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b" &&
    ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a" && ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b" &&
    ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up &&
    ip -n "$ns_a" link set "$veth_a" up && ip -n "$ns_b" link set "$veth_b" up; }; then
    echo "FAILED: cannot make the two hosts' network namespaces and veth link (ip netns add / ip link add failed above)"
    exit 1
  fi
  export BS_NETNS_HOSTS="$host_a=$ns_a=$addr_a $host_b=$ns_b=$addr_b"
  if [ "$(on_host "$host_b" hostname)" != "$host_b" ]; then
    echo "FAILED: cannot give host B a hostname of its own (unshare --uts failed above)"
    exit 1
  fi
}

# The namespace and hostname of host H (its name, address or namespace).
host_of() {
  local h
  for h in $BS_NETNS_HOSTS; do
    case "=$h=" in *"=$1="*) echo "${h%%=*} $(echo "$h" | cut -d= -f2)"; return 0 ;; esac
  done
  echo "netns: no host named $1 in BS_NETNS_HOSTS=$BS_NETNS_HOSTS" >&2
  return 1
}

on_host() {  # on_host H CMD...
  local hn ns
  read -r hn ns < <(host_of "$1") || return 1
  shift
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$hn" "$@"
}

host_pids() { ip netns pids "$(host_of "$1" | cut -d' ' -f2)"; }

mpirun_hosts() {
  echo --mca plm_rsh_agent "$netns_here/netns_rsh.sh" --mca btl tcp,self \
    --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet"
}
