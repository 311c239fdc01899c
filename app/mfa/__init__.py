"""Second factors bound to the wallet subject: TOTP (RFC 6238), WebAuthn passkeys, recovery codes.

Pure cores (``totp``, ``webauthn``, ``recovery``, ``acr``, ``sealing``), the storage protocols (``store``)
and the service that runs each ceremony and writes its audit entry (``service``). See docs/MFA.md.
"""
