import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["ds.conformance.test.mjs"],
    testTimeout: 15000,
    hookTimeout: 15000,
  },
})
