"""osd xtest: the conformance runner (runner.py) and its profiles (profiles/*.toml).

profile.py loads and validates a profile; engine.py runs scenarios (scenarios/) through a
Trial that applies the profile to each call; lab.py and spawn.py build and tear down what
the runner needs around the daemon; report.py writes and renders the result.
"""
