// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title StandinSanctionsList
/// @notice Test stand-in for the Chainalysis sanctions oracle: the same `isSanctioned(address)` read, the same
/// owner-only list updates and the same `SanctionedAddressesAdded` / `SanctionedAddressesRemoved` events.
/// @dev Written for Portcullis's tests; the interface follows the public oracle documentation
/// (go.chainalysis.com/chainalysis-oracle-docs.html).
contract StandinSanctionsList {
    /// @notice The only account that may change the list.
    address public immutable owner;

    mapping(address account => bool) private _sanctioned;

    /// @notice `addrs` were added to the list.
    event SanctionedAddressesAdded(address[] addrs);
    /// @notice `addrs` were removed from the list.
    event SanctionedAddressesRemoved(address[] addrs);

    /// @notice Only the owner may change the list.
    error StandinSanctionsListUnauthorized(address caller);

    /// @param owner_ The account that maintains the list.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Add `newSanctions` to the list.
    /// @param newSanctions The addresses to sanction.
    function addToSanctionsList(address[] calldata newSanctions) external {
        _onlyOwner();
        for (uint256 i = 0; i < newSanctions.length; ++i) {
            _sanctioned[newSanctions[i]] = true;
        }
        emit SanctionedAddressesAdded(newSanctions);
    }

    /// @notice Remove `removeSanctions` from the list.
    /// @param removeSanctions The addresses to clear.
    function removeFromSanctionsList(address[] calldata removeSanctions) external {
        _onlyOwner();
        for (uint256 i = 0; i < removeSanctions.length; ++i) {
            _sanctioned[removeSanctions[i]] = false;
        }
        emit SanctionedAddressesRemoved(removeSanctions);
    }

    /// @notice Whether `addr` is on the list.
    /// @param addr The address to screen.
    /// @return True when sanctioned.
    function isSanctioned(address addr) external view returns (bool) {
        return _sanctioned[addr];
    }

    /// @notice The oracle's name, as the Chainalysis contract reports it.
    /// @return The name.
    function name() external pure returns (string memory) {
        return "Chainalysis sanctions oracle (Portcullis test stand-in)";
    }

    function _onlyOwner() private view {
        if (msg.sender != owner) revert StandinSanctionsListUnauthorized(msg.sender);
    }
}
