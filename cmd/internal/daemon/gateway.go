package daemon

// gatewayAnswers says whether the gateway port answers ARP and ping (tests).
const gatewayAnswers = true
