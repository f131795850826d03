"""What a user may put into a job's pod, checked before a row is written.

Everything a job request carries reaches the Kubernetes pod: the image reference, the
environment, the annotations, a sweep's arguments. Each is checked here (pure functions; the
limits are arguments) and refused with a message naming the field:

- **image**: a well-formed reference (``[registry[:port]/]path[:tag][@digest]``, Docker's
  grammar), and, when an allow-list of registries is configured, from one of them;
- **env**: identifier names, at most ``MAX_ENV`` entries and ``MAX_ENV_BYTES`` in all, and
  none of the variables the NVIDIA container runtime or CUDA read to choose devices
  (``NVIDIA_VISIBLE_DEVICES=all`` would give a 1-GPU job every GPU of the node) nor the
  loader's (``LD_PRELOAD``, ``LD_LIBRARY_PATH``);
- **annotations**: qualified names as Kubernetes defines them, at most ``MAX_ANNOTATIONS``
  and ``MAX_ANNOTATION_BYTES`` in all, unprefixed or under an admin-allowed prefix only:
  ``karimasu.io/`` is reserved, and prefixes that change the pod's security or network
  (AppArmor, seccomp, Istio, Multus, ...) are therefore never accepted;
- **sweeps**: the number of jobs a grid makes is computed before anything is expanded, and
  arguments get ``{name}`` placeholders replaced by the parameter's value and nothing else
  (no ``str.format``: no attribute access, no padding).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.translation import gettext

from portal.errors import InvalidRequest

MAX_ENV = 100
MAX_ENV_BYTES = 64 * 1024
MAX_ANNOTATIONS = 32
MAX_ANNOTATION_BYTES = 64 * 1024
MAX_ARG_BYTES = 16 * 1024

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Variables that choose devices or drivers inside a GPU container, or that Karimasu sets.
RESERVED_ENV = re.compile(
    r"^(NVIDIA_.*|CUDA_VISIBLE_DEVICES|CUDA_DEVICE_ORDER|CUDA_MPS_.*|GPU_DEVICE_ORDINAL|"
    r"ROCR_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES|LD_PRELOAD|LD_LIBRARY_PATH)$"
)

#: The Kubernetes emulator's knobs (``karimasu.io/sim-*``: run time, exit code, utilization
#: of a simulated run). Only the emulator reads them; on a real cluster they do nothing, so
#: they are the one exception to the reserved ``karimasu.io/`` prefix.
SIMULATION_KEY = re.compile(r"^karimasu\.io/sim-[a-z0-9-]+$")

# Docker's reference grammar (distribution/reference), anchored.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"  # noqa: E501
IMAGE_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fail(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={field: [message]})


def check_image(image: str, allowed_registries: Iterable[str] = ()) -> str:
    """The image reference, stripped; ``InvalidRequest`` when malformed or from a registry
    not on the allow-list (when there is one). A reference without a registry is Docker
    Hub's (``docker.io``)."""
    reference = image.strip()
    match = IMAGE_REFERENCE.match(reference) if len(reference) <= 512 else None
    if match is None:
        raise fail(
            "image",
            gettext(
                "An image reference like registry.example.com/team/name:tag (lower-case path, "
                "optional tag and @sha256 digest) is required."
            ),
        )
    domain = match.group("domain") or ""
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        # Docker reads a first component without "." or ":" as part of the path, which is
        # lower-case.
        if not re.fullmatch(_COMPONENT, domain):
            raise fail(
                "image",
                gettext("%(image)r: repository names are lower-case.") % {"image": reference},
            )
        domain = ""
    allowed = [r.strip().rstrip("/") for r in allowed_registries if r.strip()]
    if allowed:
        registry = domain or "docker.io"
        if registry not in allowed:
            raise fail(
                "image",
                gettext(
                    "Images come from %(allowed)s on this cluster; %(registry)s is not one of them."
                )
                % {"allowed": ", ".join(allowed), "registry": registry},
            )
    return reference


def check_env(env: Mapping[str, Any]) -> dict[str, str]:
    """The environment as strings; ``InvalidRequest`` for bad names, reserved variables or
    too much of it."""
    bad = [k for k in env if not ENV_NAME.match(str(k))]
    if bad:
        raise fail(
            "env",
            gettext("Invalid environment variable names: %(names)s.")
            % {"names": ", ".join(map(str, bad))},
        )
    reserved = sorted(k for k in env if RESERVED_ENV.match(k))
    if reserved:
        raise fail(
            "env",
            gettext(
                "%(names)s cannot be set: the GPUs a job sees are the ones it was given, and "
                "Karimasu sets its own variables."
            )
            % {"names": ", ".join(reserved)},
        )
    values = {str(k): str(v) for k, v in env.items()}
    size = sum(len(k) + len(v) for k, v in values.items())
    if len(values) > MAX_ENV or size > MAX_ENV_BYTES:
        raise fail(
            "env",
            gettext("At most %(count)s variables and %(kib)s KiB in all.")
            % {"count": MAX_ENV, "kib": MAX_ENV_BYTES // 1024},
        )
    return values


def check_annotations(
    annotations: Mapping[str, Any], allowed_prefixes: Iterable[str] = ()
) -> dict[str, str]:
    """The annotations as strings; ``InvalidRequest`` unless every key is a valid, allowed
    qualified name and the whole stays small."""
    prefixes = {p.strip().rstrip("/") for p in allowed_prefixes if p.strip()}
    values: dict[str, str] = {}
    for key, value in annotations.items():
        key = str(key)
        prefix, _, name = key.rpartition("/")
        if (
            not name
            or len(name) > 63
            or not _ANNOTATION_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
        ):
            raise fail(
                "annotations", gettext("%(key)r is not a valid annotation key.") % {"key": key}
            )
        if prefix and prefix not in prefixes and not SIMULATION_KEY.match(key):
            allowed = ", ".join(sorted(prefixes)) or "-"
            raise fail(
                "annotations",
                gettext(
                    "Annotations under %(prefix)s/ are not allowed (allowed prefixes: "
                    "%(allowed)s; karimasu.io/ is reserved). Use a key without a prefix."
                )
                % {"prefix": prefix, "allowed": allowed},
            )
        values[key] = str(value)
    size = sum(len(k) + len(v) for k, v in values.items())
    if len(values) > MAX_ANNOTATIONS or size > MAX_ANNOTATION_BYTES:
        raise fail(
            "annotations",
            gettext("At most %(count)s annotations and %(kib)s KiB.")
            % {"count": MAX_ANNOTATIONS, "kib": MAX_ANNOTATION_BYTES // 1024},
        )
    return values


def grid_size(grid: Mapping[str, Any]) -> int:
    """How many jobs a grid makes, without making them."""
    return math.prod(len(v) if isinstance(v, list) else 0 for v in grid.values())


def fill_placeholders(arg: str, parameters: Mapping[str, Any]) -> str:
    """``arg`` with each ``{name}`` replaced by the parameter's value; text that is not a
    placeholder stays as it is. ``InvalidRequest`` for a name that is no parameter, or an
    argument that grows past ``MAX_ARG_BYTES``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise fail(
                "args",
                gettext("Placeholder {%(name)s} in args matches no parameter.") % {"name": name},
            )
        return str(parameters[name])

    filled = _PLACEHOLDER.sub(value, arg)
    if len(filled) > MAX_ARG_BYTES:
        raise fail(
            "args",
            gettext("An argument may be at most %(kib)s KiB.") % {"kib": MAX_ARG_BYTES // 1024},
        )
    return filled
