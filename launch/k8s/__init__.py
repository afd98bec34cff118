"""KubeRay manifests for reforge: rendering from a recipe + config, and validation against
the KubeRay CRD schemas (made strict), KubeRay's admission rules and Ray's `ray start`."""
