"""Fine-tuning the language model end to end as SASRec's item tower.

With `finetune_text`, an item's text vector is no longer fixed: the sentence-transformers
model (mean pooling, L2-normalized, like the features step) encodes it, and the next-item
loss trains the model's top layers too. Per step only the batch's target items (at most
`text_max_candidates`) go through the model with gradients; every other item uses the
vector cached at the last refresh, and the cache is refreshed with the tuned model before
each validation, so the early-stopping metric sees the model as it is.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.rec._sasrec_net import SASRecNet


class TextTower(nn.Module):
    """Item index -> L2-normalized mean-pooled text vector from a transformer model."""

    input_ids: torch.Tensor
    attention: torch.Tensor

    def __init__(
        self, model_dir: Path, texts: list[str], *, trainable_layers: int, max_tokens: int
    ) -> None:
        super().__init__()
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the network
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        first: Any = st[0]
        bert: Any = first.auto_model
        self.bert = bert
        tokens = first.tokenizer(
            texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
        )
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention", tokens["attention_mask"], persistent=False)
        for p in bert.parameters():
            p.requires_grad_(False)
        layers = list(bert.encoder.layer) if trainable_layers else []
        for layer in layers[-trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(k,) item indices -> (k, d) unit vectors."""
        ids, mask = self.input_ids[items], self.attention[items]
        width = int(mask.sum(1).max())
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    @torch.no_grad()
    def encode_all(self, batch: int = 256) -> torch.Tensor:
        """Every item's vector with the current weights (dropout off)."""
        was = self.training
        self.eval()
        n = self.input_ids.shape[0]
        out = torch.cat([self(torch.arange(s, min(s + batch, n))) for s in range(0, n, batch)])
        self.train(was)
        return out


class TunedSASRec(nn.Module):
    """SASRec whose target items' text vectors come fresh from the tower (with gradients)."""

    net: SASRecNet
    tower: TextTower

    def __init__(self, net: SASRecNet, tower: TextTower, max_candidates: int) -> None:
        super().__init__()
        self.net, self.tower, self.max_candidates = net, tower, max_candidates

    def forward(self, seq: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cands = torch.unique(target[target >= 0])
        if len(cands) > self.max_candidates:
            cands = cands[torch.randperm(len(cands))[: self.max_candidates]]
        text = self.net.items.text.index_copy(0, cands, self.tower(cands))
        out: tuple[torch.Tensor, torch.Tensor] = self.net(seq, target, text=text)
        return out

    def refresh(self) -> None:
        """Re-encode every item with the tuned tower into the cached text vectors."""
        self.net.items.text.copy_(self.tower.encode_all())
