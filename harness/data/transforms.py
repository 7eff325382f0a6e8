"""Paper augmentation (section 4.1) and test views (section 4.1, "10 patches"), on batches.

Randomness is drawn per epoch from (seed, epoch) for every image index at once, so the
crop, flip and colour of image i in epoch e do not depend on batch order, worker count or
where a resumed run restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness import config as C
from harness.data.shards import PreparedSplit  # or JpegSplit: both give images(idx), labels, size
from harness.errors import UserError
from harness.data import shards


@dataclass(frozen=True)
class Normaliser:
    """Mean-image subtraction (paper 2) and the input scale of the profile."""

    mean: np.ndarray  # float32 [S, S, 3] on 0-255
    scale: float  # paper: 1.0 (raw 0-255 minus mean)

    def __call__(self, crops: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
        """Subtract the mean image at each crop's own location; float32 [B, size, size, 3]."""
        out = crops.astype(np.float32)
        for b, (y, x) in enumerate(zip(ys, xs)):
            out[b] -= self.mean[y:y + size, x:x + size]
        return out * self.scale


@dataclass(frozen=True)
class EpochDraws:
    """Per-image random draws for one epoch."""

    ys: np.ndarray
    xs: np.ndarray
    flip: np.ndarray
    alpha: np.ndarray  # [N, 3] PCA colour coefficients


def epoch_draws(n: int, stored: int, crop: int, seed: int, epoch: int, pca_std: float,
                crop_flip: bool = True) -> EpochDraws:
    """crop_flip False (train.crop_flip, the paper 4.1 ablation): the centre crop, never flipped.
    The draws are made all the same, so the PCA colour coefficients do not change with it."""
    rng = np.random.default_rng([seed, epoch, 0xA1E7])
    ys = rng.integers(0, stored - crop + 1, n)
    xs = rng.integers(0, stored - crop + 1, n)
    flip = rng.random(n) < 0.5
    alpha = rng.normal(0.0, pca_std, (n, 3)).astype(np.float32)  # paper 4.1: N(0, 0.1)
    if not crop_flip:
        ys, xs = np.full(n, (stored - crop) // 2), np.full(n, (stored - crop) // 2)
        flip = np.zeros(n, bool)
    return EpochDraws(ys, xs, flip, alpha)


def pca_shift(alpha: np.ndarray, pca: dict, scale: float, mode: str) -> np.ndarray:
    """paper 4.1: add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T to every pixel; [B, 3] on 0-255 x scale.

    The paper does not say on which pixel scale l_i is an eigenvalue. Taken literally on 0-255
    (l ~ 7000) the shift would swamp the image, so "eigenvalue_01" reads l_i on 0-1 pixels
    (as fb.resnet.torch and most reproductions do) and "sqrt_eigenvalue" uses sqrt(l_i) on
    0-255 (a standard deviation). docs/paper.md ("Ambiguities", PCA scale) lists this ambiguity.
    """
    vals = np.asarray(pca["eigenvalues"], np.float64)
    vals = vals / 255.0**2 * 255.0 if mode == "eigenvalue_01" else np.sqrt(vals)
    vals = vals.astype(np.float32)
    vecs = np.asarray(pca["eigenvectors"], np.float32)
    return (alpha * vals[None, :]) @ vecs.T * scale


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """[B, H, W, 3] float32 -> contiguous NCHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


class TrainView(torch.utils.data.Dataset):
    """Random 224-style crop + flip + PCA colour; __getitem__ takes a list of indices."""

    def __init__(self, split: PreparedSplit, norm: Normaliser, pca: dict | None, crop: int,
                 seed: int, pca_std: float, pca_mode: str = "eigenvalue_01", crop_flip: bool = True):
        self.split, self.norm, self.pca, self.crop = split, norm, pca, crop
        self.seed, self.pca_std, self.pca_mode, self.crop_flip = seed, pca_std, pca_mode, crop_flip
        self.stored = split.size
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.draws = epoch_draws(len(self.split), self.stored, self.crop, self.seed, epoch, self.pca_std,
                                 self.crop_flip)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        d, c = self.draws, self.crop
        images = self.split.images(idx)
        ys, xs = d.ys[idx], d.xs[idx]
        crops = np.stack([im[y:y + c, x:x + c] for im, y, x in zip(images, ys, xs)])
        out = self.norm(crops, ys, xs, c)
        flip = d.flip[idx]
        out[flip] = out[flip, :, ::-1]
        if self.pca is not None:
            out += pca_shift(d.alpha[idx], self.pca, self.norm.scale, self.pca_mode)[:, None, None, :]
        return to_tensor(out), torch.from_numpy(self.split.labels[idx])


class DeviceTrainBatches:
    """TrainView's batches, decoded from JPEG shards and augmented on `device` (train.decode_device).

    The same (seed, epoch) draws, mean image and PCA shift as TrainView, in the same order of
    float32 operations, so the batch equals TrainView's up to the decoder: torchvision's
    decode_jpeg (nvJPEG on CUDA, libjpeg-turbo on the CPU) may differ from simplejpeg by a unit
    per pixel. Indexing (view[idx]) returns (images [B, 3, C, C] on `device`, labels on the CPU).
    Batches are made in the calling process: CUDA work does not belong in loader workers.
    """

    def __init__(self, split, norm: Normaliser, pca: dict | None, crop: int, seed: int, pca_std: float,
                 pca_mode: str = "eigenvalue_01", device: str | torch.device = "cuda", crop_flip: bool = True):
        if not all(hasattr(split, a) for a in ("shards", "offset", "length", "shard_of")):
            raise UserError("train.decode_device: decoding on the device needs JPEG-encoded prepared data, "
                            "but these shards hold raw pixels; set data.encoding: jpeg (and prepare again) "
                            "or train.decode_device: cpu")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"train.decode_device: {self.device} asked for, but this machine has no usable "
                            "CUDA device; set train.decode_device: cpu")
        self.split, self.norm, self.pca, self.crop = split, norm, pca, crop
        self.seed, self.pca_std, self.pca_mode, self.crop_flip = seed, pca_std, pca_mode, crop_flip
        self.stored = split.size
        self.mean = torch.from_numpy(np.ascontiguousarray(norm.mean, np.float32)).to(self.device)
        self.set_epoch(0)

    @classmethod
    def from_view(cls, view: TrainView, device: str | torch.device) -> "DeviceTrainBatches":
        return cls(view.split, view.norm, view.pca, view.crop, view.seed, view.pca_std, view.pca_mode, device,
                   view.crop_flip)

    def set_epoch(self, epoch: int) -> None:
        self.draws = epoch_draws(len(self.split), self.stored, self.crop, self.seed, epoch, self.pca_std,
                                 self.crop_flip)

    def __len__(self) -> int:
        return len(self.split)

    def decode(self, idx: np.ndarray) -> torch.Tensor:
        """uint8 [B, S, S, 3] on the device, one batched decode_jpeg call."""
        from torchvision.io import ImageReadMode, decode_jpeg  # only this path needs torchvision
        sp = self.split
        data = [torch.from_numpy(np.array(sp.shards[sp.shard_of[i]][sp.offset[i]:sp.offset[i] + sp.length[i]]))
                for i in idx]
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        return torch.stack(images).permute(0, 2, 3, 1)

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        d, c, dev = self.draws, self.crop, self.device
        images = self.decode(idx)
        # one gather does crop and flip: row/column indices of each output pixel in the stored
        # image; a flipped crop reads its columns backwards (the mean image with them, as
        # TrainView flips after subtracting the mean)
        ar = torch.arange(c, device=dev)
        rows = torch.from_numpy(d.ys[idx]).to(dev)[:, None] + ar
        flip = torch.from_numpy(d.flip[idx]).to(dev)[:, None]
        cols = torch.from_numpy(d.xs[idx]).to(dev)[:, None] + torch.where(flip, c - 1 - ar, ar)
        b = torch.arange(len(idx), device=dev)[:, None, None]
        r, k = rows[:, :, None], cols[:, None, :]
        out = (images[b, r, k].float() - self.mean[r, k]) * self.norm.scale  # [B, C, C, 3]
        if self.pca is not None:
            shift = pca_shift(d.alpha[idx], self.pca, self.norm.scale, self.pca_mode)
            out += torch.from_numpy(shift).to(dev)[:, None, None, :]
        return out.permute(0, 3, 1, 2).contiguous(), torch.from_numpy(self.split.labels[idx])

    def loader(self, batches):
        """The batches of one epoch, in order (fit's make_loader)."""
        return (self[b] for b in batches)


def patch_offsets(stored: int, crop: int) -> list[tuple[int, int]]:
    """paper 4.1: the four corner patches and the centre patch."""
    e, m = stored - crop, (stored - crop) // 2
    return [(0, 0), (0, e), (e, 0), (e, e), (m, m)]


class EvalView(torch.utils.data.Dataset):
    """Centre crop ([B, 3, C, C]) or 10 patches ([B, 10, 3, C, C]: 5 crops, then mirrored).

    A batch's views are written straight into one tensor, with torch's vectorised (and
    multi-threaded) ops: the batch is moved to [B, 3, S, S] once (uint8), and its mirror image
    made once; then each patch is a conversion to float32 in place, one subtraction of the mean
    image's patch (the same for every image) and one scaling; a mirrored patch is the patch at
    the mirrored offset of the mirrored batch minus the mirrored mean. Bit for bit what
    Normaliser gives (float32 subtraction, then the scale), mirrors included.
    """

    def __init__(self, split: PreparedSplit, norm: Normaliser, crop: int, protocol: str):
        self.split, self.norm, self.crop, self.protocol = split, norm, crop, protocol
        self.stored = split.size
        self.mean = torch.from_numpy(np.ascontiguousarray(np.asarray(norm.mean, np.float32).transpose(2, 0, 1)))
        self.mean_mirrored = self.mean.flip(-1)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        images = torch.from_numpy(np.ascontiguousarray(self.split.images(idx).transpose(0, 3, 1, 2)))  # uint8
        labels = torch.from_numpy(self.split.labels[idx])
        offsets = patch_offsets(self.stored, self.crop)
        if self.protocol == "center":
            out = torch.empty((len(idx), 3, self.crop, self.crop))
            return self._patch(images, self.mean, *offsets[4], out), labels
        out = torch.empty((len(idx), 10, 3, self.crop, self.crop))
        mirrored = images.flip(-1)
        for v, (y, x) in enumerate(offsets):
            self._patch(images, self.mean, y, x, out[:, v])
            self._patch(mirrored, self.mean_mirrored, y, self.stored - self.crop - x, out[:, v + 5])  # reflections
        return out, labels

    def _patch(self, images: torch.Tensor, mean: torch.Tensor, y: int, x: int, out: torch.Tensor) -> torch.Tensor:
        # three same-dtype passes: a uint8 - float32 op would take torch's slow casting loop
        c = self.crop
        out.copy_(images[:, :, y:y + c, x:x + c])
        return out.sub_(mean[:, y:y + c, x:x + c]).mul_(self.norm.scale)


def batch_loader(view: torch.utils.data.Dataset, batches, num_workers: int, pin_memory: bool | None = None):
    """DataLoader over precomputed index batches (each item is a whole batch).

    With workers, each prefetches 4 batches; on a CUDA machine batches land in pinned memory
    so the train step's non_blocking copies overlap the compute. Neither changes any value.
    """
    # Its own generator: a DataLoader iterator otherwise draws its base seed from the global
    # torch RNG, which dropout uses, and a resumed epoch (a new iterator mid-epoch) would shift
    # every later dropout mask. The views draw their randomness from (seed, epoch) instead.
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return torch.utils.data.DataLoader(view, sampler=batches, batch_size=None,
                                       num_workers=num_workers, persistent_workers=False,
                                       prefetch_factor=4 if num_workers else None,
                                       pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(0))


def eval_batches(n: int, batch: int, rank: int = 0, world: int = 1) -> list[np.ndarray]:
    """Every image exactly once over all ranks (rank r takes images r, r+world, ...), no padding."""
    mine = np.arange(rank, n, world)
    return [mine[i:i + batch] for i in range(0, len(mine), batch)]


def build_views(cfg: C.Config, data_dir: Path, seed: int):
    """(training view, val split, normaliser). With train.schedule_split holdout the training
    view leaves out the held-out slice (shards.holdout_split), which schedule_split() returns."""
    mean, pca = shards.load_stats(data_dir)
    norm = Normaliser(mean, cfg.model.input_scale)
    train_split, val_split = shards.load_split(data_dir, "train"), shards.load_split(data_dir, "val")
    if cfg.train.schedule_split == "holdout":
        train_split, _ = shards.holdout_split(train_split, cfg.train.holdout_every)
    train_view = TrainView(train_split, norm, pca if cfg.train.pca_colour else None,
                           cfg.model.input_size, seed, cfg.train.pca_std, cfg.train.pca_mode, cfg.train.crop_flip)
    return train_view, val_split, norm


def schedule_split(cfg: C.Config, data_dir: Path):
    """The held-out training slice whose centre-crop error drives the plateau rule
    (train.schedule_split holdout), or None when the validation split does (the paper)."""
    if cfg.train.schedule_split != "holdout":
        return None
    return shards.holdout_split(shards.load_split(data_dir, "train"), cfg.train.holdout_every)[1]
