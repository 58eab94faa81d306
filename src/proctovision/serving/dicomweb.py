"""A DICOMweb client for the hospital's PACS: search (QIDO-RS), retrieve (WADO-RS), store (STOW-RS).

Credentials come from the environment only, never from a command-line flag that would land in
shell history, process lists or logs. Messages name instances by a hash of their UID, never by a
header value.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from proctovision.core import fileio
from proctovision.core.errors import UserError

TOKEN_ENV = "PROCTOVISION_DICOMWEB_TOKEN"
USER_ENV = "PROCTOVISION_DICOMWEB_USER"
PASSWORD_ENV = "PROCTOVISION_DICOMWEB_PASSWORD"
CA_BUNDLE_ENV = "PROCTOVISION_DICOMWEB_CA_BUNDLE"

STUDY_UID, SERIES_UID, SOP_UID, SOP_CLASS_UID = "0020000D", "0020000E", "00080018", "00080016"


class QidoSession(requests.Session):
    """A session that sends QIDO wildcards as written (see literal_wildcards)."""

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        request.url = literal_wildcards(request.url or "")
        return super().send(request, **kwargs)


class DicomWebError(UserError):
    """The PACS cannot be reached, refuses us, or answers with something unusable."""


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop: str
    sop_class: str = ""


def uid_hash(uid: str) -> str:
    """A short name for a UID that logs and file names may carry (UIDs can be linked back to a patient)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def literal_wildcards(url: str) -> str:
    """``*`` is legal unencoded in a query (RFC 3986); Orthanc 1.10 does not match it as ``%2A``."""
    base, mark, query = url.partition("?")
    return base + mark + query.replace("%2A", "*") if mark else url


def session_from_env(environ: Mapping[str, str] | None = None) -> requests.Session:
    """No auth, HTTP basic (user + password) or a bearer token, as the environment says."""
    environ = os.environ if environ is None else environ
    token = environ.get(TOKEN_ENV, "").strip()
    user, password = environ.get(USER_ENV, ""), environ.get(PASSWORD_ENV, "")
    if token and (user or password):
        raise DicomWebError(f"set either {TOKEN_ENV} or {USER_ENV}/{PASSWORD_ENV}, not both")
    if bool(user) != bool(password):
        raise DicomWebError(f"HTTP basic authentication needs both {USER_ENV} and {PASSWORD_ENV}")
    session = QidoSession()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        session.auth = requests.auth.HTTPBasicAuth(user, password)
    if environ.get(CA_BUNDLE_ENV):
        session.verify = environ[CA_BUNDLE_ENV]
    return session


def connect(url: str, environ: Mapping[str, str] | None = None, timeout: float = 60) -> "DICOMwebClient":  # noqa: F821
    """A dicomweb-client bound to ``url`` (the DICOMweb root, e.g. http://pacs:8042/dicom-web)."""
    from dicomweb_client.api import DICOMwebClient

    if not url.startswith(("http://", "https://")):
        raise DicomWebError(f"{url}: a DICOMweb URL starts with http:// or https://")
    logging.getLogger("dicomweb_client").setLevel(logging.ERROR)  # its INFO and WARNING lines carry UIDs
    return DICOMwebClient(url.rstrip("/"), session=session_from_env(environ), timeout=timeout)


@contextmanager
def pacs_errors(action: str) -> Iterator[None]:
    """HTTP and network failures as one-line errors without the request URL (it holds UIDs)."""
    try:
        yield
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        hint = ""
        if status in (401, 403):
            hint = f": check {USER_ENV}/{PASSWORD_ENV} or {TOKEN_ENV}"
        raise DicomWebError(f"{action}: the server answered HTTP {status}{hint}") from None
    except requests.ConnectionError:
        raise DicomWebError(f"{action}: cannot connect to the DICOMweb server") from None
    except requests.Timeout:
        raise DicomWebError(f"{action}: the DICOMweb server did not answer in time") from None
    except requests.RequestException as error:
        raise DicomWebError(f"{action}: {type(error).__name__}") from None


def parse_query(items: list[str] | None) -> dict[str, str]:
    """QIDO filters from KEY=VALUE pairs (DICOM keywords or tags, e.g. ModalitiesInStudy=MR)."""
    query: dict[str, str] = {}
    for item in items or []:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise DicomWebError(f"--query {item!r}: expected KEY=VALUE, e.g. StudyDate=20240101-20241231")
        query[key.strip()] = value.strip()
    return query


def first_value(item: dict, tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or [""]
    return str(values[0])


def find_instances(
    client: "DICOMwebClient", study: str | None = None, series: str | None = None,  # noqa: F821
    query: dict[str, str] | None = None,
) -> list[InstanceRef]:
    """Every instance of a study, a series, or matching a query (QIDO-RS, all pages)."""
    filters = dict(query or {})
    if series and not study:
        filters["SeriesInstanceUID"] = series
    with pacs_errors("search for instances"):
        found = client.search_for_instances(
            study_instance_uid=study, series_instance_uid=series if study else None,
            search_filters=filters or None, get_remaining=True,
            fields=["StudyInstanceUID", "SeriesInstanceUID"],
        )
    refs = [InstanceRef(first_value(item, STUDY_UID) or (study or ""), first_value(item, SERIES_UID) or (series or ""),
                        first_value(item, SOP_UID), first_value(item, SOP_CLASS_UID)) for item in found]
    return sorted({ref for ref in refs if ref.sop}, key=lambda ref: (ref.study, ref.series, ref.sop))


def retrieve(client: "DICOMwebClient", ref: InstanceRef) -> "pydicom.Dataset":  # noqa: F821
    with pacs_errors(f"retrieve instance {uid_hash(ref.sop)}"):
        return client.retrieve_instance(ref.study, ref.series, ref.sop)


def store(client: "DICOMwebClient", datasets: list) -> None:  # noqa: F821
    """STOW-RS; a partial failure is an error (the server lists failed SOP instances)."""
    with pacs_errors(f"store {len(datasets)} derived object(s)"):
        response = client.store_instances(datasets)
    failed = getattr(response, "FailedSOPSequence", None)
    if failed:
        raise DicomWebError(f"store: the server refused {len(failed)} of {len(datasets)} derived object(s)")


def save_dataset(dataset: "pydicom.Dataset", target: Path) -> Path:  # noqa: F821
    return fileio.write_with(target, lambda path: dataset.save_as(path, enforce_file_format=True))


Progress = Callable[[int, int], None]


def fetch_to_folder(
    client: "DICOMwebClient", refs: list[InstanceRef], folder: Path,  # noqa: F821
    name_for: Callable[[InstanceRef], Path], progress: Progress | None = None,
) -> list[tuple[str, str]]:
    """Retrieve each instance into ``folder/name_for(ref)``; returns (name, reason) for those that failed."""
    failures: list[tuple[str, str]] = []
    for done, ref in enumerate(refs, start=1):
        relative = name_for(ref)
        try:
            save_dataset(retrieve(client, ref), folder / relative)
        except DicomWebError as error:
            failures.append((f"dicomweb:{relative.as_posix()}", str(error)))
        except Exception as error:  # noqa: BLE001 - an instance pydicom cannot write stays one failure
            failures.append((f"dicomweb:{relative.as_posix()}", f"cannot store the retrieved instance "
                                                               f"({type(error).__name__})"))
        if progress:
            progress(done, len(refs))
    return failures


def ingest_folder_for(manifest: Path) -> Path:
    """Retrieved instances live beside the manifest, so its relative paths stay valid after the run."""
    return manifest.parent / f"{manifest.stem}-dicomweb"


def fetch_for_ingest(
    url: str, manifest: Path, salt: str, study: str | None = None, series: str | None = None,
    query: dict[str, str] | None = None, overwrite: bool = False, progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, list[tuple[str, str]]]:
    """Retrieve the selected instances into the folder beside ``manifest``; returns it and the failures.

    Files are named ``<study pseudonym>/<SOPInstanceUID hash>.dcm``. They are gathered in a private
    temporary folder first and moved in only when the retrieval is over, so an interrupted run leaves
    the previous folder as it was.
    """
    from proctovision.imaging.dicom import pseudonym

    if not (study or series or query):
        raise DicomWebError("--dicomweb needs --study UID, --series UID or --query KEY=VALUE")
    target = ingest_folder_for(manifest)
    if target.exists() and not overwrite:
        raise DicomWebError(f"{target} exists (instances of an earlier ingest); pass --overwrite to replace it")
    client = connect(url, environ)
    refs = find_instances(client, study, series, query)
    if not refs:
        raise DicomWebError("the DICOMweb search found no instance")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))  # mode 0700
    try:
        failures = fetch_to_folder(client, refs, staging,
                                   lambda ref: Path(pseudonym(ref.study, salt)) / f"{uid_hash(ref.sop)}.dcm", progress)
        replace_folder(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target, failures


def replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an old ``target`` is removed only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)
