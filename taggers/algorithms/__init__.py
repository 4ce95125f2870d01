"""The classical taggers: IP2D/IP3D templates (ipxd), the SV1 vertexing (sv1), the MV2 BDT (mv2)."""

__all__: list[str] = []
