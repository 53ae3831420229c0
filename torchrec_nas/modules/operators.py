"""The arithmetic of the NASRec operators, as functions of their (already sliced) weights.

The supernet calls these with slices of its elastic weights, the materialized subnet with its
own copies; both therefore compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_linear(
    tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """ "Embedded FC": a linear map over the token axis, shared by every embedding channel.

    Args:
        tokens: ``[B, T_in, E]``.
        weight: ``[T_out, T_in]``.
        bias: ``[T_out]`` or ``None``.

    Returns:
        ``[B, T_out, E]``.
    """
    out = torch.matmul(weight, tokens)
    if bias is not None:
        out = out + bias.unsqueeze(-1)
    return out


def dot_product(
    dense: torch.Tensor,
    tokens: torch.Tensor,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
    efc_weight: torch.Tensor,
    efc_bias: torch.Tensor | None,
    pairs: torch.Tensor,
) -> torch.Tensor:
    """Pairwise dot products between the dense input (as one token) and the sparse tokens.

    The dense input is projected to one token of the embedding width and put in front of the
    sparse tokens; an EFC compresses those to ``n = round(sqrt(2 dim))`` tokens (operator
    balancing: parameters grow linearly with the number of features), and the first ``dim``
    entries of the lower triangle of their Gram matrix are the output.

    Args:
        dense: ``[B, D_in]``.
        tokens: ``[B, T_in, E]``.
        pairs: flat indices of the ``dim`` kept Gram entries, see
            :func:`torchrec_nas.modules.layout.tril_pair_index`.

    Returns:
        ``[B, dim]``.
    """
    dense_token = F.linear(dense, proj_weight, proj_bias).unsqueeze(1)
    z = token_linear(torch.cat([dense_token, tokens], dim=1), efc_weight, efc_bias)
    gram = torch.bmm(z, z.transpose(1, 2))
    return gram.flatten(1).index_select(1, pairs)


def factorization_machine(tokens: torch.Tensor) -> torch.Tensor:
    """Second-order FM term of ``[B, T, E]`` tokens: ``((sum t)^2 - sum t^2) / 2``, ``[B, E]``."""
    square_of_sum = tokens.sum(dim=1).pow(2)
    sum_of_square = tokens.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_square)
