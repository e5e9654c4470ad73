module ferry.local/simd

go 1.23

require (
	cosmossdk.io/simapp v0.0.0-20240118210941-3897926e722e
	github.com/cosmos/cosmos-sdk v0.50.3
)

replace (
	github.com/99designs/keyring => github.com/cosmos/keyring v1.2.0
	cosmossdk.io/client/v2 => cosmossdk.io/client/v2 v2.0.0-beta.1
	github.com/gin-gonic/gin => github.com/gin-gonic/gin v1.9.1
	github.com/syndtr/goleveldb => github.com/syndtr/goleveldb v1.0.1-0.20210819022825-2ae1ddf74ef7
)
