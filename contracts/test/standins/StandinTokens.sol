// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title StandinERC20
/// @notice Test stand-in: an OpenZeppelin ERC-20 that anyone may mint (token-gating tests only).
contract StandinERC20 is ERC20 {
    constructor() ERC20("Portcullis Standin", "PSTD") {}

    /// @notice Mint `amount` to `to`.
    /// @param to The receiver.
    /// @param amount The amount, in the smallest unit.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @title StandinERC721
/// @notice Test stand-in: an OpenZeppelin ERC-721 that anyone may mint (token-gating tests only).
contract StandinERC721 is ERC721 {
    constructor() ERC721("Portcullis Standin Pass", "PPASS") {}

    /// @notice Mint token `tokenId` to `to`.
    /// @param to The receiver.
    /// @param tokenId The new token's id.
    function mint(address to, uint256 tokenId) external {
        _mint(to, tokenId);
    }
}

/// @title StandinERC1155
/// @notice Test stand-in: an OpenZeppelin ERC-1155 that anyone may mint (token-gating tests only).
contract StandinERC1155 is ERC1155 {
    constructor() ERC1155("") {}

    /// @notice Mint `amount` of token `id` to `to` (which must accept ERC-1155 if it is a contract).
    /// @param to The receiver.
    /// @param id The token id.
    /// @param amount The amount.
    function mint(address to, uint256 id, uint256 amount) external {
        _mint(to, id, amount, "");
    }
}
