# slurm-conf.sh: the slurm.conf lines that slurm-local.sh (one node) and
# slurm-multi.sh (emulated nodes) share. Sourced, not run.

# slurm_conf_daemons: who runs the daemons, authentication, plugins and the
# scheduler: root daemons, munge, no cgroups (proctrack/linuxproc,
# task/none), nodes that may declare more CPUs than the VM has.
slurm_conf_daemons() {
	cat <<'CONF'
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
CONF
}

# slurm_conf_limits: no accounting, short waits, ended jobs kept 5 minutes.
slurm_conf_limits() {
	cat <<'CONF'
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
OverTimeLimit=0
InactiveLimit=0
Waittime=0
CONF
}
