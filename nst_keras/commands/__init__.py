"""The front-ends and their kit: the command line (`cli`, `figures`, `batch` with `jobs`,
`engines` and `contact_sheet`, `video`, `app`) and what every command shares: the one
preamble and the options (`console`), the signal guard (`guard`) and the progress displays
(`bars`). The only modules that print. Each front-end plans with `nst_keras.plan`, renders
with `nst_keras.render` and delivers with `nst_keras.delivery`; they differ in where the
inputs come from, who sets the stop token, who shows the progress and where the outputs go.
"""
