"""Ray on Slurm: ray_cluster.sbatch (one allocation, head + workers via srun, the recipe as a
Ray job) and the `reforge launch slurm` helper that fills it in."""
