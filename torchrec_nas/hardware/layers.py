"""Hardware-neutral description of what a model computes for one sample.

Cost models (FLOPs, parameters, PIM energy/latency/area) are pure functions of these records.
A NASRec architecture is turned into them by :func:`torchrec_nas.hardware.flops.model_layers`;
any other model can build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearLayer:
    """A weight matrix applied to activation vectors: ``y = W x`` with ``W`` of ``[N, K]``.

    Args:
        name: a readable path, for example ``"block3.dense.fc"``.
        in_features: K, the length of each input vector.
        out_features: N, the length of each output vector.
        vectors_per_sample: how many input vectors one sample feeds through ``W`` (1 for an
            MLP layer; the embedding width for a token-mixing "EFC" layer, which is applied to
            every embedding channel).
        weight_bits: W, bits per stored weight.
        activation_bits: A, bits per input activation.
        bias: whether the layer adds a bias (N extra parameters).

    Example::

        LinearLayer("block1.dense.fc", in_features=512, out_features=256)
    """

    name: str
    in_features: int
    out_features: int
    vectors_per_sample: int = 1
    weight_bits: int = 8
    activation_bits: int = 8
    bias: bool = True

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample."""
        return self.in_features * self.out_features * self.vectors_per_sample


@dataclass(frozen=True)
class ActivationOp:
    """Work between two activation tensors, with no stored weights (dot products, attention
    scores, element-wise gating, FM terms, LayerNorm). Runs on digital units, not crossbars.

    Args:
        name: a readable path.
        macs: multiply-accumulates per sample.
        elementwise: other element-wise operations per sample (adds, sigmoids, normalizations).
        activation_bits: bits per operand.
    """

    name: str
    macs: int = 0
    elementwise: int = 0
    activation_bits: int = 8


@dataclass(frozen=True)
class EmbeddingLookup:
    """Pooled lookups into one embedding table.

    Args:
        name: the table name.
        num_embeddings: rows of the table.
        embedding_dim: columns of the table.
        lookups_per_sample: rows read and summed per sample (the pooling factor; 1 for one-hot).
        weight_bits: bits per stored element.
    """

    name: str
    num_embeddings: int
    embedding_dim: int
    lookups_per_sample: float = 1.0
    weight_bits: int = 32

    @property
    def params(self) -> int:
        return self.num_embeddings * self.embedding_dim


Layer = LinearLayer | ActivationOp | EmbeddingLookup
