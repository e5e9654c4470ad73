// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title USDT-like test ERC-20: burns 1% of every transfer and returns no bool.
/// @notice Exercises the bridge's fee-on-transfer accounting (credit the balance delta) and
/// its safe-transfer handling of tokens whose `transfer`/`transferFrom` return nothing.
/// `mint` is open to anyone: NEVER deploy this on a network with real value.
contract FeeToken {
    uint256 public constant FEE_BPS = 100; // 1%, rounded down

    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
    }

    /// @notice Create `amount` new tokens for `to` (open to anyone; test-only).
    function mint(address to, uint256 amount) external {
        require(to != address(0), "mint to zero");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    /// @dev Deliberately returns nothing, like USDT.
    function transfer(address to, uint256 amount) external {
        _transfer(msg.sender, to, amount);
    }

    /// @dev Deliberately returns nothing, like USDT.
    function transferFrom(address from, address to, uint256 amount) external {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= amount, "allowance");
            allowance[from][msg.sender] = allowed - amount;
        }
        _transfer(from, to, amount);
    }

    function _transfer(address from, address to, uint256 amount) private {
        require(to != address(0), "transfer to zero");
        uint256 balance = balanceOf[from];
        require(balance >= amount, "balance");
        uint256 fee = (amount * FEE_BPS) / 10_000;
        balanceOf[from] = balance - amount;
        balanceOf[to] += amount - fee;
        totalSupply -= fee;
        emit Transfer(from, to, amount - fee);
        if (fee != 0) emit Transfer(from, address(0), fee);
    }
}
