"""The search-space DSL: grammar, validation, genes, architectures and their serialized forms."""
from nas.space.arch import arch_from_json, arch_to_json, save_arch
from nas.space.lighttrack_codec import from_lighttrack_string, to_lighttrack_string
from nas.space.registry import list_spaces, load_arch, load_space
from nas.space.space import Arch, Gene, OutputPosition, SearchSpace
from nas.space.spec import Bounds, parse_quantity

__all__ = ["Arch", "Bounds", "Gene", "OutputPosition", "SearchSpace", "arch_from_json", "arch_to_json",
           "from_lighttrack_string", "list_spaces", "load_arch", "load_space", "parse_quantity", "save_arch",
           "to_lighttrack_string"]
