"""Names of the custom resource, in one place for the CRD, the operator and the CLI."""

GROUP = "kubetune.io"
VERSION = "v1alpha1"
KIND = "HyperParameterTuningJob"
PLURAL = "hyperparametertuningjobs"
SINGULAR = "hyperparametertuningjob"
SHORT_NAME = "hptj"
API_VERSION = f"{GROUP}/{VERSION}"
