"""Architecture specs, block strings, search spaces and the model builder."""
from .blockstrings import decode_arch, decode_block, encode_arch, encode_block
from .builder import build_model, count_macs, count_params
from .families import FamilyModel, family_names
from .interface import SearchSpace
from .nasbench201 import NB201_OPS, NasBench201Space, Nb201Arch
from .network import (Network, build_network, network_strings, published_widths, reference_label,
                      reference_network, reference_network_names)
from .ofa import OfaArch, OfaMobileNetV3Space, build_ofa_model
from .reference import reference_arch, reference_names
from .registry import SPACES, create_space, space_to_dict
from .space import BaseBlock, Decision, MnasNetSpace, layer_resolutions, parse_op
from .specs import ACTIVATIONS, OPS, SKIPS, ArchSpec, BlockSpec, LayerSpec, round_filters

__all__ = [
    "ACTIVATIONS", "OPS", "SKIPS", "ArchSpec", "BlockSpec", "LayerSpec", "decode_arch",
    "decode_block", "encode_arch", "encode_block", "build_model", "count_macs", "count_params",
    "reference_arch", "reference_names", "round_filters",
    "BaseBlock", "Decision", "MnasNetSpace", "SearchSpace", "layer_resolutions", "parse_op",
    "NB201_OPS", "NasBench201Space", "Nb201Arch", "SPACES", "create_space", "space_to_dict",
    "FamilyModel", "family_names", "Network", "build_network", "network_strings",
    "published_widths", "reference_label", "reference_network", "reference_network_names",
    "OfaArch", "OfaMobileNetV3Space", "build_ofa_model",
]
