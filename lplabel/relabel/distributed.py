"""Ranks of a relabel run: torchrun / torch.distributed, or shards started by hand.

Three ways to run:

* one process (rank 0 of 1);
* ``torchrun --nproc_per_node N -m lplabel relabel ...`` (or any launcher that sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): a process group is opened
  (NCCL on CUDA, gloo on CPU) unless the caller opened one already; ranks compute disjoint parts,
  exchange their status, and rank 0 merges;
* ``--rank r --world-size w`` without a process group: independent shard processes (other
  machines, a job array, or one after the other); each writes its parts to its work directory and
  whichever finds every part present merges (under a file lock), or ``lplabel merge`` joins them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import DistributedError, RelabelError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: bool = False  # a torch.distributed process group is in use
    owns_group: bool = False  # we opened it (and close it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def detect(cls, rank=None, world_size=None, device_type: str = "cpu") -> "DistContext":
        import torch.distributed as dist

        if rank is not None or world_size is not None:
            if rank is None or world_size is None:
                raise RelabelError("give both rank and world_size (--rank and --world-size)")
            rank, world_size = int(rank), int(world_size)
            if not 0 <= rank < world_size:
                raise RelabelError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
            return cls(rank, world_size, 0, False, False)
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True, False)
        ws = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if ws <= 1:
            return cls()
        if not dist.is_available():  # pragma: no cover
            raise DistributedError("WORLD_SIZE > 1 but torch.distributed is not available in this torch build")
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        return cls(rank, ws, local, True, True)

    # -- collectives (no-ops without a group) -----------------------------------------------
    def broadcast(self, obj):
        """``obj`` from rank 0 to every rank."""
        if not self.group:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, on every rank."""
        if not self.group:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False
            self.group = False
