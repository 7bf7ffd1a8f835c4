"""Reading a dataset's films before a run: :meth:`~FilmScreening.validate` finds every problem (``trust
check``), :meth:`~FilmScreening.screen` leaves unreadable films out and counts them, :meth:`~FilmScreening.exclude`
repeats a screening elsewhere without reading again; films whose depth is inferred get one depth."""
from __future__ import annotations

import warnings

from ..errors import DatasetError, DicomError, ImageError, TrustError
from .images import FilmWarning, film_range_note
from .records import UNREADABLE, UNUSABLE_TRUTH


class FilmScreening:
    """The screening half of :class:`~trust_core.data.datasets.RadiographDataset` (its films read, its
    problems listed or left out), a mixin over the dataset's records, images and masks."""

    def validate(self, ids=None, *, progress=None, notes: list | None = None,
                 found: list | None = None) -> list[TrustError]:
        """Decode every image and render every ground truth; return the problems (nothing is changed).

        A multi-hour evaluation stops at the first unreadable file; this finds them all beforehand.
        ``notes``: a list that receives the warnings (``"<file>: <why>"``) about films that were read but look
        wrong: a depth inferred from the values (:class:`~trust_core.data.images.FilmWarning`), an almost
        black or uniform film. ``found``: a list that receives ``(image_id, problem)`` for every problem.
        """
        problems: list[TrustError] = []
        for image_id in (sorted(self._all) if ids is None else ids):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", FilmWarning)
                    image = self.native_image(image_id)
                said = [str(w.message) for w in caught if issubclass(w.category, FilmWarning)]
                for w in caught:
                    if issubclass(w.category, FilmWarning) and getattr(w.message, "depth", None):
                        self.inferred_depths[image_id] = w.message.depth
                note = film_range_note(image)
                if note:
                    said.append(f"{self.record(image_id).path.name}: {note}")
                if notes is not None:
                    notes.extend(said)
                self.native_mask(image_id)
            except TrustError as exc:
                problems.append(exc)
                if found is not None:
                    found.append((image_id, exc))
            if progress is not None:
                progress(image_id)
        self._settle_depth()
        if notes is not None and self.depth_note:
            notes.append(f"{self.root.name}: {self.depth_note}")
        return problems

    def screen(self, ids, *, strict: bool = False, films: bool = True, limit: int | None = None,
               progress=None) -> list[str]:
        """Read the films ``ids`` (``films=False``: only their sizes, what a mask needs) and return those that
        read, in order (the first ``limit``). A film that cannot be read (a :class:`DicomError` or
        :class:`ImageError`, naming the file), or a positive film whose ground truth cannot be used (a mask of
        another size: :class:`DatasetError`), is left out of the dataset, listed in :attr:`unreadable` with
        its reason and counted under the skip :data:`UNREADABLE` (:data:`UNUSABLE_TRUTH`); ``strict`` raises
        it instead. Depths inferred
        from the values (:class:`FilmWarning`) are listed in :attr:`film_warnings`. Nothing on disk changes.
        """
        kept: list[str] = []
        for image_id in ids:
            if limit is not None and len(kept) >= limit:
                break
            if image_id in self.unreadable:
                continue
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", FilmWarning)
                    self.native_image(image_id) if films else self.native_shape(image_id)
                    if self.record(image_id).label:
                        self.native_mask(image_id)  # its ground truth too: a mask of another size, found now
                for w in caught:
                    if issubclass(w.category, FilmWarning):
                        self.film_warnings[image_id] = str(w.message)
                        if getattr(w.message, "depth", None):
                            self.inferred_depths[image_id] = w.message.depth
            except (DicomError, ImageError, DatasetError) as exc:
                if strict:
                    what = "a ground truth that cannot be used" if isinstance(exc, DatasetError) else \
                        "a film that cannot be read"
                    raise type(exc)(exc.reason + f" (--strict: {what} stops the run; without it the film is skipped "
                                    "and listed)", path=exc.path) from None
                self.exclude({image_id: str(exc)}, reason=UNUSABLE_TRUTH if isinstance(exc, DatasetError) else UNREADABLE)
            else:
                kept.append(image_id)
            if progress is not None:
                progress(image_id)
        self._settle_depth()
        return kept

    def _settle_depth(self) -> None:
        """One depth for the films whose depth is inferred: the deepest any of them needs. Films inferred
        shallower are named (they are read at that depth from now on, like their neighbours)."""
        if not self.inferred_depths:
            return
        deepest = max(self.inferred_depths.values())
        self.film_depth = max(deepest, self.film_depth or 0)
        shallower = sorted(i for i, d in self.inferred_depths.items() if d < self.film_depth)
        if shallower:
            counts = {}
            for d in self.inferred_depths.values():
                counts[d] = counts.get(d, 0) + 1
            self.depth_note = (f"films of this dataset need different depths by their values "
                               f"({', '.join(f'{d}-bit: {n}' for d, n in sorted(counts.items()))}): one detector has "
                               f"one depth, so all are read as {self.film_depth}-bit (a dim film is not read brighter "
                               f"than its neighbours); e.g. {', '.join(shallower[:3])}. Declare the depth in the PNGs "
                               f"(sBIT) if another is right")

    def exclude(self, unreadable: dict[str, str], *, reason: str = UNREADABLE) -> None:
        """Leave out films already found unreadable (image id → why), as :meth:`screen` does, without reading
        them again: how a worker rebuilding this dataset elsewhere (the Ray engine) sees the driver's dataset."""
        self.source_fingerprint  # noqa: B018 — fixed before the first film leaves
        for image_id, why in unreadable.items():
            if image_id in self.unreadable:
                continue
            self.unreadable[image_id] = why
            self.skipped.add(reason, image_id)
            record = self._all.pop(image_id, None)
            if record is not None:
                self.__dict__.setdefault("_left_out", {})[image_id] = record
        gone = set(unreadable)
        self.records = [r for r in self.records if r.image_id not in gone]
