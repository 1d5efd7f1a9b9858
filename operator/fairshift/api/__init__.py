"""The ModelRollout API: pydantic models of spec and status, and the CRD rendered from them."""

GROUP = "fairshift.io"
VERSION = "v1alpha1"
KIND = "ModelRollout"
PLURAL = "modelrollouts"
SINGULAR = "modelrollout"
SHORT_NAMES = ("mro",)
API_VERSION = f"{GROUP}/{VERSION}"
