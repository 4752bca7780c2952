"""The text-aware SASRec network: item representations from text and ids, a causal encoder.

An item's representation is `A·t_i + id_i + Σ_k c_k(a_ik)`: `t_i` its language-model
text embedding (zero when it has none), `A` a learned adaptation layer, `id_i` a learned
ID embedding, and `c_k` learned embeddings of its catalogue codes (brand, category levels,
price decile; code 0, unknown, embeds to zero). Items nobody interacted with in training
keep a zero ID part, so a new item is ranked by its text and codes alone. The same table
embeds the input sequence and scores the next item (tied weights, as in SASRec), over the
whole catalog.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ItemTable(nn.Module):
    """(items + 1, dim) representations; the last row is padding (zeros)."""

    text: torch.Tensor
    id_mask: torch.Tensor
    attrs: torch.Tensor

    def __init__(
        self,
        text: torch.Tensor | None,
        n_items: int,
        dim: int,
        use_id: bool,
        attrs: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.register_buffer("text", text if text is not None else torch.zeros(n_items, 0))
        self.adapt = nn.Linear(text.shape[1], dim) if text is not None else None
        self.ids = nn.Embedding(n_items, dim) if use_id else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
        self.register_buffer("id_mask", torch.ones(n_items, 1))
        codes = attrs if attrs is not None else torch.zeros(n_items, 0, dtype=torch.long)
        self.register_buffer("attrs", codes)
        embs = [
            nn.Embedding(int(codes[:, k].max()) + 1, dim, padding_idx=0)
            for k in range(codes.shape[1])
        ]
        for emb in embs:
            nn.init.normal_(emb.weight, std=0.02)
            emb.weight.data[0] = 0.0  # unknown embeds to zero and stays there
        self.attr_emb = nn.ModuleList(embs)

    def forward(self, text: torch.Tensor | None = None) -> torch.Tensor:
        """Every item's representation plus a zero padding row (`text` replaces the
        stored text vectors, e.g. with freshly encoded ones)."""
        parts: list[torch.Tensor] = []
        if self.adapt is not None:
            parts.append(self.adapt(self.text if text is None else text))
        if self.ids is not None:
            parts.append(self.ids.weight * self.id_mask)
        parts += [emb(self.attrs[:, k]) for k, emb in enumerate(self.attr_emb)]
        table = torch.stack(parts).sum(0)
        return torch.cat([table, table.new_zeros(1, table.shape[1])])


class Block(nn.Module):
    """Pre-norm self-attention and feed-forward, each with a residual connection."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, 4 * dim)
        self.ff2 = nn.Linear(4 * dim, dim)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=self.p if self.training else 0.0,
        )
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, d)))
        out: torch.Tensor = x + self.drop(self.ff2(F.gelu(self.ff1(self.norm2(x)))))
        return out


class SASRecNet(nn.Module):
    """Sequence of item indices (left-padded with `n_items`) -> a state per position."""

    def __init__(
        self,
        text: torch.Tensor | None,
        n_items: int,
        *,
        dim: int,
        layers: int,
        heads: int,
        max_len: int,
        dropout: float,
        use_id: bool,
        mask_seen: bool = True,
        attrs: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.mask_seen = mask_seen
        self.items = ItemTable(text, n_items, dim, use_id, attrs)
        self.pos = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.pad = n_items
        self.scale = dim**0.5

    def encode(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(batch, len) indices -> (batch, len, dim) states; position t has seen 0..t."""
        n = seq.shape[1]
        valid = seq != self.pad
        x = table[seq] * self.scale + self.pos.weight[-n:]
        x = self.drop(x) * valid.unsqueeze(-1)
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        # a key counts if it is a real item, or the query itself (no empty rows)
        mask = (causal & valid[:, None, :]) | torch.eye(n, dtype=torch.bool, device=seq.device)
        mask = mask[:, None]
        for block in self.blocks:
            x = block(x, mask)
        out: torch.Tensor = self.norm(x)
        return out

    def forward(
        self,
        seq: torch.Tensor,
        target: torch.Tensor,
        neg: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed next-item cross-entropy over positions with a target (>= 0), and their count.

        Full softmax over the catalog; given sampled items `neg` and every item's log
        expected count in a sample `log_q`, a sampled softmax over the target and `neg`
        with the logQ correction (each candidate's logit minus its log expected count).
        """
        seq, target = _trim(seq, target, self.pad)
        table = self.items(text)
        keep = target >= 0
        states = self.encode(seq, table)[keep]
        tgt = target[keep]
        if neg is None or log_q is None:
            logits = states @ table[:-1].T
            if self.mask_seen:
                # a boolean mask, scattered with a padding column that takes the empty cells,
                # then one masked_fill: no full-size copy of the logits for the backward pass
                seen = self._seen(seq, target)[keep]
                hide = torch.zeros(len(seen), self.pad + 1, dtype=torch.bool, device=seq.device)
                hide.scatter_(1, seen, True)
                logits = logits.masked_fill(hide[:, :-1], float("-inf"))
            return F.cross_entropy(logits.float(), tgt, reduction="sum"), keep.sum()
        pos = (states * table[tgt]).sum(-1, keepdim=True).float() - log_q[tgt, None]
        negs = (states @ table[neg].T).float() - log_q[neg]
        negs = negs.masked_fill(neg[None, :] == tgt[:, None], float("-inf"))
        logits = torch.cat([pos, negs], dim=1)
        zeros = torch.zeros(len(tgt), dtype=torch.long, device=seq.device)
        return F.cross_entropy(logits, zeros, reduction="sum"), keep.sum()

    def _seen(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(batch, len, len) items already in the window at each position (else padding).

        Such items are never next when a user's items are distinct, so their logits are
        masked; a repeat that is the target keeps its logit.
        """
        n = seq.shape[1]
        earlier = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        hit = earlier & (seq[:, None, :] != target[:, :, None])
        return torch.where(hit, seq[:, None, :].expand(-1, n, -1), self.pad)

    def last_state(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(batch, dim) state after the last (right-most) position."""
        out: torch.Tensor = self.encode(seq, table)[:, -1]
        return out


def _trim(seq: torch.Tensor, target: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the leading columns that are padding in every row (windows are right-aligned)."""
    filled = (seq != pad).any(0).nonzero()
    first = int(filled[0]) if len(filled) else seq.shape[1] - 1
    return seq[:, first:], target[:, first:]
