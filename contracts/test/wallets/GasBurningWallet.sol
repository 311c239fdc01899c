// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title GasBurningWallet
/// @notice Test fixture (malicious): isValidSignature loops until all the gas it was given is gone.
contract GasBurningWallet is IERC1271 {
    /// @notice ERC-1271 entry point that never returns: it ends out of gas.
    /// @return magicValue Never returned.
    function isValidSignature(bytes32, bytes calldata) external pure returns (bytes4 magicValue) {
        assembly ("memory-safe") {
            for {} 1 {} {}
        }
        return magicValue;
    }
}
