#!/usr/bin/env bash
# Submits a study to Slurm as a job that survives its time limit: the ranks
# get SIGUSR1 before the limit, checkpoint and exit 75, and the job requeues
# itself and continues with `batchscope run --resume`.
#   launch/submit.sh STUDY.yaml [options] [-- batchscope run options, e.g. --set k=v]
# Checks the study (and that the world serves it) before submitting, renders
# launch/slurm.sbatch.in and prints the job id (--dry-run: the script).
set -euo pipefail
BS_ROOT=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<'EOF'
usage: launch/submit.sh STUDY.yaml [options] [-- batchscope run options]

  --nodes N              nodes (default 1)
  --tasks-per-node T     MPI ranks per node (default: --gpus-per-node, else 1)
  --gpus-per-node G      GPUs per node (default: none requested)
  --time HH:MM:SS        time limit per job segment, or D-HH:MM:SS (default 04:00:00)
  --partition P          Slurm partition
  --account A            Slurm account
  --signal-seconds S     SIGUSR1 this long before the time limit (default 120)
  --job-name NAME        default: bs-<study file name>
  --log PATH             job output, appended over requeues (default ./batchscope-%j.out)
  --launcher L           auto | srun | mpirun (default auto: srun --mpi=pmix when
                         `srun --mpi=list` offers it on the node, else mpirun)
  --srun-mpi TYPE        srun --mpi plugin (default pmix)
  --bin PATH             batchscope binary (default $BATCHSCOPE_BIN or build/batchscope)
  --no-check             do not run `batchscope check` and `plan` before submitting
  --dry-run              print the batch script; submit nothing
Everything after -- goes to `batchscope run STUDY --resume` (--set k=v, --threads T).
EOF
}

die() { echo "submit.sh: $*" >&2; exit 2; }
note() { echo "submit.sh: $*" >&2; }

study='' nodes=1 tpn='' gpn='' time=04:00:00 partition='' account='' signal=120 name='' log=''
launcher=auto srun_mpi=pmix bin=${BATCHSCOPE_BIN:-$BS_ROOT/build/batchscope} check=1 dry=0
run_args=()
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift; set -- "$opt" "$val" "$@" ;;
  esac
  case $opt in
    -h|--help) usage; exit 0 ;;
    --dry-run) dry=1; shift; continue ;;
    --no-check) check=0; shift; continue ;;
    --) shift; run_args=("$@"); break ;;
    --nodes|--tasks-per-node|--gpus-per-node|--time|--partition|--account|--signal-seconds|--job-name|--log|--launcher|--srun-mpi|--bin)
      [ $# -ge 2 ] || die "$opt needs a value (see --help)"
      val=$2; shift 2 ;;
    -*) die "unknown option '$opt' (batchscope run options go after --; see --help)" ;;
    *) [ -z "$study" ] || die "one study file, got '$study' and '$opt' (batchscope run options go after --)"
       study=$opt; shift; continue ;;
  esac
  case $opt in
    --nodes) nodes=$val ;;
    --tasks-per-node) tpn=$val ;;
    --gpus-per-node) gpn=$val ;;
    --time) time=$val ;;
    --partition) partition=$val ;;
    --account) account=$val ;;
    --signal-seconds) signal=$val ;;
    --job-name) name=$val ;;
    --log) log=$val ;;
    --launcher) launcher=$val ;;
    --srun-mpi) srun_mpi=$val ;;
    --bin) bin=$val ;;
  esac
done

# --- validate ---------------------------------------------------------------
[ -n "$study" ] || { usage >&2; die "a study file is required"; }
[ -f "$study" ] && [ -r "$study" ] || die "study file '$study' does not exist or cannot be read"
study=$(cd "$(dirname "$study")" && pwd)/$(basename "$study")
posint() { [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || die "$1 must be a positive whole number, got '$2'"; }
posint --nodes "$nodes"
[ -n "$gpn" ] && posint --gpus-per-node "$gpn"
tpn=${tpn:-${gpn:-1}}
posint --tasks-per-node "$tpn"
[[ $time =~ ^(([0-9]+)-)?([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])$ ]] \
  || die "--time must be HH:MM:SS or D-HH:MM:SS, got '$time'"
secs=$(( 10#${BASH_REMATCH[2]:-0} * 86400 + 10#${BASH_REMATCH[3]} * 3600 + 10#${BASH_REMATCH[4]} * 60 + 10#${BASH_REMATCH[5]} ))
[ "$secs" -gt 0 ] || die "--time must be longer than zero, got '$time'"
secs=$(( (secs + 59) / 60 * 60 ))   # Slurm rounds the limit up to whole minutes
[[ $signal =~ ^[1-9][0-9]{0,4}$ ]] && [ "$signal" -le 65535 ] \
  || die "--signal-seconds must be a whole number of seconds in 1..65535, got '$signal'"
[ "$signal" -lt "$secs" ] \
  || die "--signal-seconds ($signal) must be shorter than --time ($time, ${secs}s in Slurm's whole minutes)"
[ $((secs - signal)) -ge 60 ] \
  || note "warning: Slurm may send SIGUSR1 up to 60 s early; with --time $time and --signal-seconds $signal it may come right at the start"
word() { [ -z "$2" ] || [[ $2 =~ ^[A-Za-z0-9._+-]+$ ]] || die "$1 may hold letters, digits and . _ + - only, got '$2'"; }
name=${name:-bs-$(basename "${study%.*}")}
word --job-name "$name"
word --partition "$partition"
word --account "$account"
word --srun-mpi "$srun_mpi"
case $launcher in auto|srun|mpirun) ;; *) die "--launcher must be auto, srun or mpirun, got '$launcher'" ;; esac
log=${log:-batchscope-%j.out}
[[ $log = /* ]] || log=$PWD/$log
[[ $log =~ ^[^[:space:]]+$ ]] || die "--log must not contain spaces, got '$log'"
[ -d "$(dirname "$log")" ] || die "--log: folder '$(dirname "$log")' does not exist"
[[ $bin = /* ]] || bin=$PWD/$bin

# batchscope run options: --resume is always given; --overwrite would throw
# away the checkpoints at every requeue.
args=() check_args=()
skip=0
for a in "${run_args[@]}"; do
  if [ "$skip" = 1 ]; then skip=0; args+=("$a"); continue; fi
  case $a in
    --resume) ;;
    --overwrite) die "-- --overwrite cannot be used: every requeue would restart from scratch (remove the old output instead)" ;;
    --threads) skip=1; args+=("$a") ;;
    --threads=*) args+=("$a") ;;
    *) args+=("$a"); check_args+=("$a") ;;
  esac
done

# --- check the study before it waits in the queue ---------------------------
ranks=$((nodes * tpn))
if [ "$check" = 1 ]; then
  [ -x "$bin" ] || die "--bin: '$bin' is not an executable batchscope (build it, or give --bin, or --no-check)"
  out=$("$bin" check "$study" "${check_args[@]}" 2>&1) || { echo "$out" >&2; die "the study failed 'batchscope check'; nothing submitted"; }
  note "$out"
  out=$("$bin" plan "$study" --ranks "$ranks" "${check_args[@]}" 2>&1) \
    || { echo "$out" >&2; die "$ranks ranks (--nodes $nodes x --tasks-per-node $tpn) cannot serve the study; nothing submitted"; }
  idle=$(echo "$out" | grep -i '^idle ranks' || true)
  [ -z "$idle" ] || note "warning: with $ranks ranks, $idle"
fi

# --- render -------------------------------------------------------------------
template=$BS_ROOT/launch/slurm.sbatch.in
script=$(<"$template")
extra=""
[ -n "$gpn" ] && extra+="#SBATCH --gpus-per-node=$gpn"$'\n'
[ -n "$partition" ] && extra+="#SBATCH --partition=$partition"$'\n'
[ -n "$account" ] && extra+="#SBATCH --account=$account"$'\n'
extra+="#SBATCH --chdir=$PWD"
quoted=""
for a in "${args[@]}"; do quoted+="${quoted:+ }$(printf '%q' "$a")"; done
sub() { script=${script//"{{$1}}"/"$2"}; }
sub JOB_NAME "$name"
sub NODES "$nodes"
sub TASKS_PER_NODE "$tpn"
sub TIME "$time"
sub LOG "$log"
sub SIGNAL_SECONDS "$signal"
sub EXTRA_SBATCH "$extra"
sub BIN "$(printf '%q' "$bin")"
sub STUDY "$(printf '%q' "$study")"
sub RUN_ARGS "$quoted"
sub LAUNCHER "$launcher"
sub SRUN_MPI "$srun_mpi"
[[ $script != *'{{'* ]] || die "internal: unfilled field in $template"

if [ "$dry" = 1 ]; then
  printf '%s\n' "$script"
  note "dry run: nothing submitted"
  exit 0
fi
command -v sbatch >/dev/null || die "sbatch not found: submit from a Slurm login node, or use --dry-run"
jid=$(printf '%s\n' "$script" | sbatch --parsable) || { echo "submit.sh: sbatch failed" >&2; exit 1; }
jid=${jid%%;*}
note "submitted job $jid ($ranks ranks, --time $time, SIGUSR1 ${signal}s before the limit); log: ${log//%j/$jid}"
echo "$jid"
