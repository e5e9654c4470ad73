//go:build tools

package tools

import _ "cosmossdk.io/simapp/simd"
