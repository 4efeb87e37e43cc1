"""The HyperParameterTuningJob API: spec and status models, and the CRD made from them."""

from kubetune.api.resource import GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from kubetune.api.spec import HyperParameterTuningJobSpec, parse_spec
from kubetune.api.status import HyperParameterTuningJobStatus

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "HyperParameterTuningJobSpec",
    "HyperParameterTuningJobStatus",
    "parse_spec",
]
