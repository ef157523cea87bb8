"""``python -m speclens.encoders.write_snapshots``: save the open_clip and timm snapshots
(:mod:`speclens.encoders.snapshots`) for the installed versions, so that checking an encoder id
never imports those libraries (``make`` runs this at install time)."""

from __future__ import annotations

from speclens.encoders import openclip_catalogue, timm_catalogue


def main() -> None:
    for module in (openclip_catalogue, timm_catalogue):
        print(module.write_snapshot() or "the cache folder cannot be written; nothing saved")


if __name__ == "__main__":
    main()
