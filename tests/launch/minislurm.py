"""A two-node Slurm on this host, for tests: shell text run inside netns.run_isolated.

Debian's slurmctld/slurmd 22.05 and munge, started by hand (no systemd): a private munged
socket (auth cannot be turned off), proctrack/linuxproc and task/none so no cgroup.conf is
needed, and two slurmd (`-N n1`, `-N n2`) with their own ports at 127.0.0.1 and 127.0.0.2.
"""
from __future__ import annotations

import shutil

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")

SLURM_CONF = """\
ClusterName=reforgetest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd-%n.log
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
KillWait=10
NodeName=n1 NodeAddr=127.0.0.1 Port=16818 CPUs={cpus} State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.2 Port=16819 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""

# Starts munged, slurmctld and both slurmd under $SLURM_DIR; waits until both nodes are idle.
START = r"""
mkdir -p "$SLURM_DIR"/state "$SLURM_DIR"/spool/n1 "$SLURM_DIR"/spool/n2 "$SLURM_DIR"/log
head -c 1024 /dev/urandom > "$SLURM_DIR/munge.key"; chmod 400 "$SLURM_DIR/munge.key"
munged -f --socket="$SLURM_DIR/munge.sock" --key-file="$SLURM_DIR/munge.key" --pid-file="$SLURM_DIR/munged.pid" \
  --log-file="$SLURM_DIR/log/munged.log" --seed-file="$SLURM_DIR/munged.seed"
export SLURM_CONF="$SLURM_DIR/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N n1
slurmd -f "$SLURM_CONF" -N n2
for _ in $(seq 60); do
  [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c idle)" = 2 ] && break; sleep 1
done
sinfo -N
"""

# Stops the daemons by their PID files (the PID namespace ends whatever is left).
STOP = r"""
for f in "$SLURM_DIR"/slurmd-n1.pid "$SLURM_DIR"/slurmd-n2.pid "$SLURM_DIR"/slurmctld.pid "$SLURM_DIR"/munged.pid; do
  [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
done
sleep 1
"""


def unavailable_reason() -> str:
    missing = [d for d in DAEMONS if not shutil.which(d) and not shutil.which(d, path="/usr/sbin")]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): `apt-get install slurmctld slurmd "
                "slurm-client munge` (.ci/run does this)")
    return ""


def write_conf(directory: str, cpus: int) -> None:
    with open(f"{directory}/slurm.conf", "w") as f:
        f.write(SLURM_CONF.format(d=directory, cpus=cpus))
