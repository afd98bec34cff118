"""Bringing up Ray clusters for reforge's recipes: Slurm (sbatch), Kubernetes (KubeRay
RayJob/RayCluster manifests and their validation) and one machine (local_cluster.sh)."""
