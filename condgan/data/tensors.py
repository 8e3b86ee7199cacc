"""In-memory labelled images with batched fetching (no per-image Python overhead)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate


class LabelledTensors(Dataset):
    """uint8 images (N, C, H, W) and int64 labels held in memory.

    `__getitems__` lets the DataLoader fetch a whole batch with one indexing op.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, image_size: int = 0):
        if images.ndim == 3:
            images = images.unsqueeze(1)
        if image_size and images.shape[-2:] != (image_size, image_size):
            images = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                                   antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
        self.images = images.contiguous()
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def _to_float(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(127.5).sub_(1.0)

    def __getitem__(self, i):
        return {"image": self._to_float(self.images[i]), "label": self.labels[i]}

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices)
        return {"image": self._to_float(self.images[idx]), "label": self.labels[idx]}


def collate(items):
    """Pass through batches that the dataset already assembled; stack lists of samples."""
    return items if isinstance(items, dict) else default_collate(items)
