"""Hub ids -> a local folder with only the autoencoder's files -> ``load_dir``.

Fails fast and in one line when the Hub cannot be reached: with ``HF_HUB_OFFLINE=1``
only the local cache is looked at; otherwise one short request checks the endpoint
before huggingface_hub's own retries (about 25 s of back-off) could start.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

from ..data.hub import CONNECT_TIMEOUT, cached_snapshot, endpoint, offline, unreachable  # the one hub module
from ..errors import ProbeError

__all__ = ["download", "load_hub", "select_files", "offline", "endpoint", "CONNECT_TIMEOUT"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _how_to(repo_id: str) -> str:
    return (f"where the Hub is reachable run `hf download {repo_id} --local-dir DIR`, "
            f"copy DIR here and use `probe info DIR`")


def select_files(files: list[str], subfolder: str | None = None) -> list[str]:
    """The files of a repo that the autoencoder needs, and nothing else.

    A TAESD pair, else the autoencoder folder (``subfolder``, the repo root when it is a
    model, or a pipeline's ``vae/``) with its config and one weight format (safetensors
    preferred, the non-variant file preferred over e.g. ``.fp16.``).
    """
    pairs = [f for f in files if "/" not in f and fnmatch.fnmatch(f, "*_encoder.*")
             and f.replace("_encoder.", "_decoder.") in files]
    if pairs and subfolder is None:
        return sorted(pairs + [f.replace("_encoder.", "_decoder.") for f in pairs])
    if subfolder is not None:
        prefixes = [subfolder.strip("/") + "/" if subfolder.strip("/") else ""]
    elif "config.json" in files and any(f.endswith(WEIGHT_SUFFIXES) and "/" not in f for f in files):
        prefixes = [""]
    else:
        prefixes = ["vae/", ""]
    for prefix in prefixes:
        if prefix + "config.json" not in files:
            continue
        here = [f for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]
        for suffix in WEIGHT_SUFFIXES:
            weights = [f for f in here if f.endswith(suffix) or f.endswith(suffix + ".index.json")]
            plain = [f for f in weights if f.split("/")[-1].startswith("diffusion_pytorch_model" + suffix)]
            if weights:
                chosen = plain or weights
                extra = [prefix + "model_index.json"] if prefix == "" and "model_index.json" in files else []
                return sorted({prefix + "config.json", *chosen, *extra})
    return []


def _check_reachable(url: str, repo_id: str) -> None:
    reason = unreachable(url)
    if reason is not None:
        raise ProbeError(f"cannot reach the Hub at {url} to fetch {repo_id!r} ({reason}); {_how_to(repo_id)}")


def _cached(repo_id: str, revision: str | None, cache_dir: str | None) -> Path | None:
    return cached_snapshot(repo_id, "model", revision, cache_dir)


def download(repo_id: str, subfolder: str | None = None, revision: str | None = None,
             cache_dir: str | None = None, token: str | bool | None = None) -> Path:
    """A local folder holding the autoencoder files of Hub repo ``repo_id`` (cached)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub import errors as hf_errors

    if offline():
        folder = _cached(repo_id, revision, cache_dir)
        if folder is None:
            raise ProbeError(f"{repo_id!r} is not in the local Hub cache and HF_HUB_OFFLINE is set; {_how_to(repo_id)}")
        return folder
    url = endpoint()
    try:
        _check_reachable(url, repo_id)
    except ProbeError:
        folder = _cached(repo_id, revision, cache_dir)  # offline but cached: use it
        if folder is not None:
            return folder
        raise
    try:
        files = HfApi(endpoint=url, token=token).list_repo_files(repo_id, revision=revision)
        wanted = select_files(files, subfolder)
        if not wanted:
            raise ProbeError(f"Hub repo {repo_id!r} holds no autoencoder: no TAESD pair, no config.json with "
                             f"weights{' in ' + subfolder if subfolder else ' at the root or in vae/'}")
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                                      allow_patterns=wanted, endpoint=url, etag_timeout=CONNECT_TIMEOUT))
    except hf_errors.GatedRepoError as e:
        raise ProbeError(f"Hub repo {repo_id!r} is gated: accept its licence on the Hub and log in (`hf auth login`)") from e
    except hf_errors.RepositoryNotFoundError as e:
        raise ProbeError(f"no Hub repo {repo_id!r} (or it is private: log in with `hf auth login`)") from e
    except hf_errors.RevisionNotFoundError as e:
        raise ProbeError(f"Hub repo {repo_id!r} has no revision {revision!r}") from e
    except hf_errors.HFValidationError as e:
        raise ProbeError(f"{repo_id!r} is not a valid Hub id: {str(e).splitlines()[0]}") from e
    except ProbeError:
        raise
    except Exception as e:  # network dropped mid-way, disk full, HTTP 5xx
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ProbeError(f"cannot fetch {repo_id!r} from the Hub: {reason}; {_how_to(repo_id)}") from e


def load_hub(repo_id: str, subfolder: str | None = None, revision: str | None = None,
             cache_dir: str | None = None, token: str | bool | None = None, **opts):
    """Download (or find in the cache) Hub repo ``repo_id`` and load it like a local folder."""
    from .registry import load_dir

    folder = download(repo_id, subfolder=subfolder, revision=revision, cache_dir=cache_dir, token=token)
    if subfolder is not None:
        opts["subfolder"] = subfolder
    return load_dir(folder, **opts)
