import pytest


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from core.ray_utils import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=4)  # logical CPUs: actors share the 2 real cores, they run in turns
    yield ray
    ray.shutdown()
