// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";

import {OwnedWallet} from "./OwnedWallet.sol";

/// @title OwnedWalletFactory
/// @notice Test fixture: CREATE2 factory for counterfactual OwnedWallets, the `create2Factory` of ERC-6492
/// wrapped signatures. The address depends only on this factory, the salt and the owner, so it is known before
/// deployment; `deployWallet` is idempotent so a verifier may replay the factory call safely.
contract OwnedWalletFactory {
    /// @notice A wallet was deployed at `wallet` for `owner`.
    event OwnedWalletFactoryDeployed(address indexed wallet, address indexed owner, bytes32 salt);

    /// @notice Deploy the wallet of (`owner`, `salt`) unless it exists already.
    /// @param owner The wallet's signing EOA.
    /// @param salt Any value; one owner can have several wallets.
    /// @return wallet The wallet's address (deployed now or before).
    function deployWallet(address owner, bytes32 salt) external returns (address wallet) {
        wallet = walletAddress(owner, salt);
        if (wallet.code.length > 0) return wallet;
        new OwnedWallet{salt: salt}(owner);
        emit OwnedWalletFactoryDeployed(wallet, owner, salt);
    }

    /// @notice The CREATE2 address of the wallet of (`owner`, `salt`), deployed or not.
    /// @param owner The wallet's signing EOA.
    /// @param salt The salt given to deployWallet.
    /// @return The counterfactual address.
    function walletAddress(address owner, bytes32 salt) public view returns (address) {
        bytes32 initCodeHash = keccak256(abi.encodePacked(type(OwnedWallet).creationCode, abi.encode(owner)));
        return Create2.computeAddress(salt, initCodeHash);
    }
}
