"""Architecture specs, block strings, search spaces and the model builder."""
from .blockstrings import decode_arch, decode_block, encode_arch, encode_block
from .builder import build_model, count_macs, count_params
from .reference import reference_arch, reference_names, round_filters
from .specs import ACTIVATIONS, OPS, SKIPS, ArchSpec, BlockSpec, LayerSpec

__all__ = [
    "ACTIVATIONS", "OPS", "SKIPS", "ArchSpec", "BlockSpec", "LayerSpec", "decode_arch",
    "decode_block",
    "encode_arch", "encode_block", "build_model", "count_macs", "count_params", "reference_arch",
    "reference_names", "round_filters",
]
from .space import BaseBlock, Decision, MnasNetSpace, layer_resolutions, parse_op

__all__ += ["BaseBlock", "Decision", "MnasNetSpace", "layer_resolutions", "parse_op"]
from .nasbench201 import NB201_OPS, NasBench201Space, Nb201Arch  # noqa: E402
from .registry import SPACES, create_space, space_to_dict  # noqa: E402

__all__ += ["NB201_OPS", "NasBench201Space", "Nb201Arch", "SPACES", "create_space",
            "space_to_dict"]
from .families import FamilyModel, family_names  # noqa: E402
from .network import (Network, build_network, network_strings, published_widths,  # noqa: E402
                      reference_label, reference_network, reference_network_names)

__all__ += ["FamilyModel", "family_names", "Network", "build_network", "network_strings",
            "published_widths", "reference_label", "reference_network", "reference_network_names"]
from .ofa import OfaArch, OfaMobileNetV3Space, build_ofa_model  # noqa: E402

__all__ += ["OfaArch", "OfaMobileNetV3Space", "build_ofa_model"]
