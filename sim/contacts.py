"""Contacts between the hand's parts, the objects and the ground, batched over envs.

Genesis reports contacts as pairs of global link indices; lookup tables turn them into a
(N, K, 6) hand-part-by-object table (thumb, index, middle, ring, little, palm), the contact force
per cell, and which objects touch the ground.
"""

from __future__ import annotations

import torch

from dexforge.sim import hand as H


class ContactReader:
    """Reads the solver's contacts after each step into fixed tensors (updated in place)."""

    def __init__(self, built, objects: list, device: torch.device):
        self._built = built
        self.n_envs = built.n_envs
        self.n_objects = len(objects)
        self.device = device
        k = self.n_objects
        self.contacts = torch.zeros(self.n_envs, k, 6, dtype=torch.bool, device=device)
        self.forces = torch.zeros(self.n_envs, k, 6, device=device)
        self.ground = torch.zeros(self.n_envs, k, dtype=torch.bool, device=device)
        # lookup tables from global link index to hand part (0-5) and to object (0..K-1), -1 elsewhere
        solver = built.scene.rigid_solver
        n_links = solver.n_links
        part = torch.full((n_links + 1,), -1, dtype=torch.long)
        obj = torch.full((n_links + 1,), -1, dtype=torch.long)
        hand = built.hand
        for p, name in enumerate(H.CONTACT_PARTS):
            for link in H.FINGER_LINKS[name]:
                part[hand.get_link(link).idx] = p
        for k, entity in enumerate(objects):
            obj[entity.link_start : entity.link_end] = k
        ground = torch.zeros(n_links + 1, dtype=torch.bool)
        ground[built.ground.link_start : built.ground.link_end] = True
        self._part_of, self._obj_of, self._is_ground = part.to(device), obj.to(device), ground.to(device)

    def read(self) -> None:
        """Refresh `contacts`, `forces` and `ground` from the last physics step, in place."""
        collider = self._built.scene.rigid_solver.collider
        cfg = collider.collider_config
        if cfg.has_prunable_contacts or cfg.has_non_box_plane_convex_convex:
            # trimmed to the busiest env, padding marked with link -1 (cheaper than the full capacity)
            data = collider.get_contacts(as_tensor=True, to_torch=True, is_padded=False)
            la, lb = data["link_a"].long(), data["link_b"].long()
            cmax = la.shape[-1]
            valid = (la >= 0) & (lb >= 0)
        else:  # zero-copy layout: padding is stale, so mask it with the per-env counts
            data = collider.get_contacts(as_tensor=True, to_torch=True, is_padded=True)
            n = data["n_contacts"].reshape(-1)
            cmax = int(n.max()) if n.numel() else 0
            la, lb = data["link_a"][:, :cmax].long(), data["link_b"][:, :cmax].long()
            valid = torch.arange(cmax, device=self.device)[None, :] < n[:, None]
        self.contacts.zero_()
        self.forces.zero_()
        self.ground.zero_()
        if cmax == 0:
            return
        la = torch.where(valid & (la >= 0), la, -1)
        lb = torch.where(valid & (lb >= 0), lb, -1)
        force = data["force"][:, :cmax].norm(dim=-1)
        k = self.n_objects
        pa, pb, oa, ob = self._part_of[la], self._part_of[lb], self._obj_of[la], self._obj_of[lb]
        # hand part x object pairs, either order; one dump slot for everything else
        pair = torch.where((pa >= 0) & (ob >= 0), ob * 6 + pa, torch.where((pb >= 0) & (oa >= 0), oa * 6 + pb, k * 6))
        counts = torch.zeros(self.n_envs, k * 6 + 1, device=self.device)
        counts.scatter_add_(1, pair, valid.float())
        forces = torch.zeros_like(counts).scatter_add_(1, pair, force * valid)
        self.contacts.copy_((counts[:, : k * 6] > 0).view(-1, k, 6))
        self.forces.copy_(forces[:, : k * 6].view(-1, k, 6))
        ga, gb = self._is_ground[la], self._is_ground[lb]
        on = torch.where(ga & (ob >= 0), ob, torch.where(gb & (oa >= 0), oa, k))
        g = torch.zeros(self.n_envs, k + 1, device=self.device).scatter_add_(1, on, valid.float())
        self.ground.copy_(g[:, :k] > 0)
